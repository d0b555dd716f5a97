//! Logs the participants a trusted node refuses for their identity: none at all (a node of an
//! open domain), or a certificate the domain's identity CA did not sign. rustdds reports those
//! only in its own log (and retries a failed handshake every second); refusals for permissions
//! reach amlip as discovery events (`amlip_fabric::dds`). This layer reads rustdds's lines and
//! says each refused participant once, in amlip's words, under the library's [`RefusalLog`].

use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::trust::RefusalLog;

/// Where rustdds logs its discovery-side security decisions.
pub(crate) const TARGET: &str = "rustdds::discovery::secure_discovery";

#[derive(Default)]
pub(crate) struct Strangers {
    log: Mutex<RefusalLog>,
    /// Participants already logged (bounded).
    logged: Mutex<std::collections::HashSet<String>>,
}

/// (who, why) of a rustdds line that refuses a participant for its identity.
fn refusal(line: &str) -> Option<(String, String)> {
    if line.contains("incompatible Security, not matching") {
        // "... Remote guid: GUID {<prefix hex><entity>} ..."
        let who = line.split("GUID {").nth(1)?.split([' ', '}']).next()?;
        let who: String = who.chars().take(24).collect();
        return Some((who, "it has no identity (a node of an open domain)".into()));
    }
    // The handshake fails on whichever side checks the certificate (who replies depends on
    // the GUIDs): "Replying to a handshake request failed: E. Remote guid prefix: P",
    // "Validating handshake reply message failed. Error: E. Remote guid prefix: P", the same
    // for the final message, or "Failed to validate the identity of the remote participant
    // P. Info: E".
    let (who, error) = if line.contains("handshake") && line.contains("failed") {
        let (head, who) = line.rsplit_once("Remote guid prefix: ")?;
        (who.trim().to_string(), head.to_string())
    } else if let Some(rest) =
        line.strip_prefix("Failed to validate the identity of the remote participant ")
    {
        let (who, error) = rest.split_once(". Info: ")?;
        (who.trim().to_string(), error.to_string())
    } else {
        return None;
    };
    let why = if error.contains("ertificate signature verification") {
        "its certificate is not signed by this domain's identity CA".to_string()
    } else {
        let e = error
            .rsplit_once("exception: ")
            .map_or(error.as_str(), |(_, e)| e)
            .trim_end_matches(['.', ' ']);
        format!("its identity did not check out ({e})")
    };
    Some((who, why))
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
}

impl<S: Subscriber> Layer<S> for Strangers {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let Some((who, why)) = refusal(&m.0) else {
            return;
        };
        {
            let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            if logged.len() >= 4096 {
                logged.clear();
            }
            if !logged.insert(who.clone()) {
                return;
            }
        }
        let Some(also) = self.log.lock().unwrap_or_else(|e| e.into_inner()).admit() else {
            return;
        };
        let vendor = match who.get(..4) {
            Some("010f") => " (eProsima Fast DDS)",
            Some("0112") => " (rustdds)",
            _ => "",
        };
        tracing::warn!("trusted domain: refused participant {who}{vendor}: {why}{also}");
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn rustdds_refusals_are_read() {
        let (who, why) = refusal(
            "Remote participant has incompatible Security, not matching with it. Remote guid: \
             GUID {01122e7457c5c9242e271f97 EntityId::PARTICIPANT}",
        )
        .unwrap();
        assert_eq!(who, "01122e7457c5c9242e271f97");
        assert!(why.contains("no identity"));
        let (who, why) = refusal(
            "Replying to a handshake request failed: Security exception: Certificate signature \
             verification failure: CertificateSignatureVerificationFailed. Remote guid prefix: \
             81905eab010c584af11a9b03",
        )
        .unwrap();
        assert_eq!(who, "81905eab010c584af11a9b03");
        assert!(why.contains("identity CA"), "{why}");
        let (who, why) = refusal(
            "Validating handshake reply message failed. Error: Security exception: Certificate \
             signature verification failure: X. Remote guid prefix: 0112aa",
        )
        .unwrap();
        assert_eq!(who, "0112aa");
        assert!(why.contains("identity CA"), "{why}");
        assert!(refusal("Validated identity of remote participant 81905eab").is_none());
    }
}
