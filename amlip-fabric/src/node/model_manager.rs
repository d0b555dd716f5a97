//! AML-IP's model managers: a [`ModelManagerSenderNode`] announces models on
//! `amlip/model_statistics` and hands them over by RPC (`amlip/rpc_request_model_<sender>`,
//! answered on `amlip/rpc_reply_model_<receiver>`); a [`ModelManagerReceiverNode`] sees the
//! announcements and asks a chosen sender for a model, with a timeout.
//!
//! The bytes are AML-IP's; what the statistics blob and the request say is left to the
//! application, as in AML-IP. amlip's own meaning for them is in `amlip-flows`' `infer`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::StreamExt;
use tokio::sync::mpsc;

use super::{start_engine, STOP_TIMEOUT};
use crate::config::NodeConfig;
use crate::dds::{topics, Profile, Writer};
use crate::error::{BoxError, Error};
use crate::protocol::core::{
    decoded, error_payload, parse_error_payload, report_start, Inbound, NodeCore, Role,
};
use crate::runtime::NodeThread;
use crate::wire::{AmlipId, ModelStatistics, MsData, NodeKind, NodeState, RpcReply, RpcRequest};

/// Announcements a receiver keeps (the latest per sender and model name); a flood of forged
/// ones beyond this is dropped, so a peer cannot make us hold unbounded memory.
const MAX_ANNOUNCEMENTS: usize = 4096;

/// Receivers a sender keeps a reply writer for (each holds its latest reply, a model file):
/// requests under more forged receiver ids than this drop the oldest writer.
const MAX_REPLY_WRITERS: usize = 32;

/// Answers a model request: the request's bytes in, the model's bytes out (an `Err` is sent
/// back as an error the receiver reports).
pub trait ModelReplier: Send + Sync + 'static {
    /// The reply to `request` from the receiver `client`.
    fn reply(&self, client: &AmlipId, request: &Bytes) -> Result<Bytes, BoxError>;
}

impl<F> ModelReplier for F
where
    F: Fn(&AmlipId, &Bytes) -> Result<Bytes, BoxError> + Send + Sync + 'static,
{
    fn reply(&self, client: &AmlipId, request: &Bytes) -> Result<Bytes, BoxError> {
        self(client, request)
    }
}

enum Command {
    Publish(ModelStatistics),
    Request {
        server: AmlipId,
        data: Bytes,
        reply: flume::Sender<Result<Bytes, String>>,
    },
}

/// What the engine and the handles share.
#[derive(Default)]
struct Shared {
    /// The latest announcement per (sender, model name).
    statistics: Mutex<BTreeMap<(AmlipId, String), ModelStatistics>>,
    /// Those who asked to hear each new announcement.
    watchers: Mutex<Vec<flume::Sender<ModelStatistics>>>,
}

impl Shared {
    fn announce(&self, s: ModelStatistics) {
        {
            let mut all = self.statistics.lock().expect("statistics");
            let key = (s.server_id.clone(), s.name.clone());
            if all.len() >= MAX_ANNOUNCEMENTS && !all.contains_key(&key) {
                tracing::warn!(sender = %s.server_id, "too many model announcements; ignored");
                return;
            }
            all.insert(key, s.clone());
        }
        self.watchers
            .lock()
            .expect("watchers")
            .retain(|w| match w.try_send(s.clone()) {
                Ok(()) | Err(flume::TrySendError::Full(_)) => true,
                Err(flume::TrySendError::Disconnected(_)) => false,
            });
    }
}

/// One model-manager engine: statistics in and out, model requests in and out.
struct Manager {
    thread: NodeThread,
    id: AmlipId,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Manager {
    fn start(
        cfg: NodeConfig,
        kind: NodeKind,
        replier: Option<Arc<dyn ModelReplier>>,
    ) -> Result<Self, Error> {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let engine_shared = shared.clone();
        let (id, thread) = start_engine(
            kind,
            cfg,
            Default::default(),
            "amlip-models",
            move |core, ready, shutdown| run(core, engine_shared, replier, rx, ready, shutdown),
        )?;
        Ok(Self {
            thread,
            id,
            commands,
            shared,
        })
    }

    fn send(&self, c: Command) -> Result<(), Error> {
        self.commands.send(c).map_err(|_| Error::Stopped)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.thread.stop(STOP_TIMEOUT);
    }
}

async fn run(
    core: Rc<NodeCore>,
    shared: Arc<Shared>,
    replier: Option<Arc<dyn ModelReplier>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: std::sync::mpsc::Sender<Result<(), crate::dds::DdsError>>,
    mut shutdown: crate::runtime::Shutdown,
) {
    let me = core.id.clone();
    let start = (|| {
        let ep = core.endpoints();
        let p = &ep.participant;
        let stats_writer =
            Rc::new(p.writer::<ModelStatistics>(topics::MODEL_STATISTICS, Profile::JobControl)?);
        let stats =
            decoded(p.reader::<ModelStatistics>(topics::MODEL_STATISTICS, Profile::JobControl)?)
                .boxed_local();
        let requests = decoded(p.reader_catching_up::<RpcRequest>(
            &topics::rpc_request_model(&me),
            Profile::ModelRpc,
        )?)
        .boxed_local();
        let replies = decoded(
            p.reader_catching_up::<RpcReply>(&topics::rpc_reply_model(&me), Profile::ModelRpc)?,
        )
        .boxed_local();
        let inbound = core.subscribe(Role::Monitor)?;
        Ok((stats_writer, stats, requests, replies, inbound))
    })();
    let Some((stats_writer, mut stats, mut requests, mut replies, mut inbound)) =
        report_start(&ready, start)
    else {
        return;
    };
    core.publish_status(NodeState::Running).await;
    let mut writers = RpcWriters::default();
    let mut pending: HashMap<u32, (AmlipId, flume::Sender<Result<Bytes, String>>)> = HashMap::new();
    let mut next_task = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(ev) = inbound.next() => match ev {
                Inbound::ParticipantDied if !shutdown.is_triggered() => {
                    tracing::warn!("model manager's participant stopped; leaving");
                    break;
                }
                // An AML-IP receiver's reply reader, or sender's request reader: create our
                // writer towards it now, so that its first sample is not dropped as one from a
                // writer the peer has not matched yet.
                Inbound::ForeignReader(topic) => match topics::model_peer_of_topic(&topic) {
                    Some((peer, NodeKind::ModelReceiver)) if replier.is_some() => {
                        let _ = writers.reply(&core, &peer);
                    }
                    Some((peer, NodeKind::ModelSender)) if replier.is_none() => {
                        let _ = writers.request(&core, &peer);
                    }
                    _ => {}
                },
                _ => {}
            },
            Some(s) = stats.next() => shared.announce(s.value),
            Some(r) = requests.next() => {
                let RpcRequest(req) = r.value;
                if req.server_id != me {
                    continue;
                }
                let data = match &replier {
                    Some(replier) => match replier.reply(&req.client_id, &req.data) {
                        Ok(model) => model,
                        Err(e) => error_payload(&e.to_string()),
                    },
                    None => error_payload("this node receives models; it hands none over"),
                };
                let writer = match writers.reply(&core, &req.client_id) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(receiver = %req.client_id, "cannot answer a model request: {e}");
                        continue;
                    }
                };
                let reply = RpcReply(MsData {
                    client_id: req.client_id.clone(),
                    task_id: req.task_id,
                    server_id: me.clone(),
                    data,
                });
                if let Err(e) = writer.write(&reply).await {
                    tracing::warn!(receiver = %req.client_id, "model reply not sent: {e}");
                }
            }
            Some(r) = replies.next() => {
                let RpcReply(rep) = r.value;
                if rep.client_id != me {
                    continue;
                }
                match pending.remove(&rep.task_id) {
                    Some((server, tx)) if server == rep.server_id => {
                        let result = match parse_error_payload(&rep.data) {
                            Some(why) => Err(why),
                            None => Ok(rep.data),
                        };
                        let _ = tx.try_send(result);
                    }
                    Some(other) => {
                        pending.insert(rep.task_id, other);
                    }
                    None => {}
                }
            }
            Some(cmd) = commands.recv() => match cmd {
                Command::Publish(s) => {
                    shared.announce(s.clone());
                    if let Err(e) = stats_writer.write(&s).await {
                        tracing::warn!(model = %s.name, "model statistics not published: {e}");
                    }
                }
                Command::Request { server, data, reply } => {
                    pending.retain(|_, (_, tx)| !tx.is_disconnected());
                    let writer = match writers.request(&core, &server) {
                        Ok(w) => w,
                        Err(e) => {
                            let _ = reply.try_send(Err(e.to_string()));
                            continue;
                        }
                    };
                    let task_id = next_task;
                    next_task = next_task.wrapping_add(1);
                    let req = RpcRequest(MsData {
                        client_id: me.clone(),
                        task_id,
                        server_id: server.clone(),
                        data,
                    });
                    match writer.write(&req).await {
                        Ok(()) => {
                            pending.insert(task_id, (server, reply));
                        }
                        Err(e) => {
                            let _ = reply.try_send(Err(e.to_string()));
                        }
                    }
                }
            },
        }
    }
    core.publish_status(NodeState::Dropped).await;
}

/// At most this many of each kind of RPC writer are kept (the oldest is dropped): receivers and
/// senders are cheap to forge, and each reply writer holds its latest model.
const MAX_RPC_WRITERS: usize = MAX_REPLY_WRITERS;

/// Writers kept per peer, the oldest dropped beyond [`MAX_RPC_WRITERS`].
struct Bounded<T> {
    writers: HashMap<AmlipId, Rc<Writer<T>>>,
    order: VecDeque<AmlipId>,
}

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Self {
            writers: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T: crate::wire::WireType> Bounded<T> {
    fn get(
        &mut self,
        core: &NodeCore,
        peer: &AmlipId,
        topic: String,
    ) -> Result<Rc<Writer<T>>, crate::dds::DdsError> {
        if let Some(w) = self.writers.get(peer) {
            return Ok(w.clone());
        }
        let w = Rc::new(
            core.endpoints()
                .participant
                .writer::<T>(&topic, Profile::ModelRpc)?,
        );
        if self.writers.len() >= MAX_RPC_WRITERS {
            if let Some(oldest) = self.order.pop_front() {
                self.writers.remove(&oldest);
            }
        }
        self.order.push_back(peer.clone());
        self.writers.insert(peer.clone(), w.clone());
        Ok(w)
    }
}

/// A manager's writers: requests towards senders, replies towards receivers.
#[derive(Default)]
struct RpcWriters {
    requests: Bounded<RpcRequest>,
    replies: Bounded<RpcReply>,
}

impl RpcWriters {
    fn request(
        &mut self,
        core: &NodeCore,
        sender: &AmlipId,
    ) -> Result<Rc<Writer<RpcRequest>>, crate::dds::DdsError> {
        self.requests
            .get(core, sender, topics::rpc_request_model(sender))
    }

    fn reply(
        &mut self,
        core: &NodeCore,
        receiver: &AmlipId,
    ) -> Result<Rc<Writer<RpcReply>>, crate::dds::DdsError> {
        self.replies
            .get(core, receiver, topics::rpc_reply_model(receiver))
    }
}

/// Announces models and hands them over to receivers that ask (AML-IP's
/// `ModelManagerSenderNode`). Its status says kind `model_sender`.
pub struct ModelManagerSenderNode {
    inner: Manager,
}

impl ModelManagerSenderNode {
    /// A sender as `cfg` says, answering model requests with `replier`.
    pub fn with_config(cfg: NodeConfig, replier: impl ModelReplier) -> Result<Self, Error> {
        Ok(Self {
            inner: Manager::start(cfg, NodeKind::ModelSender, Some(Arc::new(replier)))?,
        })
    }

    /// The node's id (receivers address their requests to it).
    pub fn id(&self) -> &AmlipId {
        &self.inner.id
    }

    /// Publishes `statistics` about the model `name` (late joiners receive it too).
    pub fn publish_statistics(
        &self,
        name: &str,
        statistics: impl Into<Bytes>,
    ) -> Result<(), Error> {
        self.inner.send(Command::Publish(ModelStatistics {
            name: name.to_owned(),
            server_id: self.inner.id.clone(),
            data: statistics.into(),
        }))
    }

    /// The announcements this node has seen on the domain (its own included).
    pub fn statistics(&self) -> Vec<ModelStatistics> {
        all_statistics(&self.inner.shared)
    }
}

/// Sees model announcements and asks senders for models (AML-IP's
/// `ModelManagerReceiverNode`). Its status says kind `model_receiver`.
pub struct ModelManagerReceiverNode {
    inner: Manager,
}

impl ModelManagerReceiverNode {
    /// A receiver as `cfg` says.
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Ok(Self {
            inner: Manager::start(cfg, NodeKind::ModelReceiver, None)?,
        })
    }

    /// The node's id.
    pub fn id(&self) -> &AmlipId {
        &self.inner.id
    }

    /// The latest announcement of every (sender, model) seen so far.
    pub fn statistics(&self) -> Vec<ModelStatistics> {
        all_statistics(&self.inner.shared)
    }

    /// Every announcement from now on (the ones already seen are in
    /// [`statistics`](Self::statistics)). At most 1,024 wait unread; newer ones beyond that
    /// are kept only in `statistics`.
    pub fn watch(&self) -> flume::Receiver<ModelStatistics> {
        let (tx, rx) = flume::bounded(1024);
        self.inner
            .shared
            .watchers
            .lock()
            .expect("watchers")
            .push(tx);
        rx
    }

    /// Asks `sender` for a model with `request` (what it means is the sender's to say) and
    /// waits at most `timeout` for the reply.
    pub fn request_model(
        &self,
        sender: &AmlipId,
        request: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let (tx, rx) = flume::bounded(1);
        self.inner.send(Command::Request {
            server: sender.clone(),
            data: request.into(),
            reply: tx,
        })?;
        let why = match rx.recv_timeout(timeout) {
            Ok(Ok(model)) => return Ok(model),
            Ok(Err(why)) => why,
            Err(flume::RecvTimeoutError::Timeout) => format!("no reply within {timeout:?}"),
            Err(flume::RecvTimeoutError::Disconnected) => return Err(Error::Stopped),
        };
        Err(Error::ModelRequest {
            sender: sender.clone(),
            why,
        })
    }
}

fn all_statistics(shared: &Shared) -> Vec<ModelStatistics> {
    shared
        .statistics
        .lock()
        .expect("statistics")
        .values()
        .cloned()
        .collect()
}
