// A Fast DDS peer that behaves like eProsima AML-IP v0.3 on the wire, for amlip's interop
// tests and benchmarks. Written from docs/wire-protocol.md (AML-IP's topics, type names, byte
// layouts, QoS and message sequence); no AML-IP source. Roles:
//
//   peer main      --domain D --name N --jobs J --size S [--async]   AML-IP's (Async)MainNode
//                  [--payload TEXT | --payload-file F]    (every job carries that text)
//   peer edge      --domain D --name N --jobs J --payload TEXT       AML-IP's EdgeNode (the same
//                                                   protocol on the `inference` topics)
//   peer computing --domain D --name N [--max-jobs M]                AML-IP's ComputingNode
//   peer status    --domain D --name N [--seconds T]                 AML-IP's StatusNode
//   peer model-receiver --domain D --name N [--request TEXT] [--attempts K] [--wait-ms W]
//                  [--out FILE]          AML-IP's ModelManagerReceiverNode, as its demo uses it
//   peer model-sender --domain D --name N --file F [--model NAME] [--seconds T]
//                                        AML-IP's ModelManagerSenderNode, as its demo uses it
//
// AML-IP's demo programs, with their default names (`--name` still overrides):
//   peer demo-main      --domain D    the workload demo's async main `AML-MainNode`: 3 jobs,
//                                     submitted 0.1 s apart (`--jobs`, `--interval-ms`)
//   peer demo-computing --domain D    the workload demo's computing node `AML-ComputingNode`
//
// Any role takes `--trust DIR/NAME`: DDS Security (PKI-DH, Access-Permissions, AES-GCM-GMAC)
// with the files `main-node trust init/add` writes, as an AML-IP node built with Fast DDS's
// security plugins would be configured.
//
// Like AML-IP: one UDPv4 transport (no shared memory), 65500-byte messages, synchronous
// publishing; every job-protocol endpoint RELIABLE, TRANSIENT_LOCAL, KEEP_ALL; status KEEP_LAST
// 1; NO_KEY topics; payloads serialized by hand as plain CDR little endian, GENERIC as
// `u32 size; u8 has_been_allocated = 1; bytes`. One request at a time per main, also async
// (jobs queue and go one after the other); a computing node answers availability only when
// idle. Unlike AML-IP, every wait has a (generous) timeout, so a test never hangs.
//
// Output, one line per event, for the tests to read:
//   ready <id>
//   job <i> task <t> bytes <n> ms <round trip> by <computing id>
//   answer <i> <the solution as text>          (with --payload)
//   summary jobs <n> ok <n> median_ms <m> total_ms <t>
//   served <main id> <task> bytes <n>
//   status <id> kind <k> state <s>
//   statistics <model name> from <sender id> bytes <n>     (model receiver)
//   model attempt <k> bytes <n> ms <t> by <sender id>      (model receiver; the reply)
//   timeout attempt <k> ms <t>                             (model receiver: no reply in time)
//   replied <receiver id> task <t> request <text> bytes <n> (model sender)

#include <fastdds/dds/domain/DomainParticipant.hpp>
#include <fastdds/dds/domain/DomainParticipantFactory.hpp>
#include <fastdds/dds/publisher/DataWriter.hpp>
#include <fastdds/dds/publisher/Publisher.hpp>
#include <fastdds/dds/subscriber/DataReader.hpp>
#include <fastdds/dds/subscriber/DataReaderListener.hpp>
#include <fastdds/dds/subscriber/SampleInfo.hpp>
#include <fastdds/dds/subscriber/Subscriber.hpp>
#include <fastdds/dds/topic/TopicDataType.hpp>
#include <fastdds/dds/topic/TypeSupport.hpp>
#include <fastdds/rtps/transport/UDPv4TransportDescriptor.h>
#include <fastdds/dds/log/Log.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace eprosima::fastdds::dds;
using eprosima::fastrtps::rtps::InstanceHandle_t;
using eprosima::fastrtps::rtps::SerializedPayload_t;
using Clock = std::chrono::steady_clock;

static std::atomic<bool> g_stop{false};
// `--trace`: each step of a main's job on stderr, in ms since the process started.
static bool g_trace = false;
static const auto g_t0 = std::chrono::steady_clock::now();
static void trace(const char* what, int job) {
    if (!g_trace) return;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - g_t0).count();
    std::fprintf(stderr, "trace %.3f job %d %s\n", ms, job, what);
}

// ---------------------------------------------------------------------------------------------
// Plain CDR, little endian, alignment counted from the first byte after the 4-byte header.

class CdrOut {
public:
    // Writes into `buf` (which must be large enough), or only counts when `buf` is null.
    explicit CdrOut(uint8_t* buf) : buf_(buf) {}
    void align(size_t n) {
        while (pos_ % n) put(0);
    }
    void u8(uint8_t v) { put(v); }
    void u32(uint32_t v) {
        align(4);
        for (int i = 0; i < 4; ++i) put(uint8_t(v >> (8 * i)));
    }
    void bytes(const uint8_t* p, size_t n) {
        if (buf_) std::memcpy(buf_ + pos_, p, n);
        pos_ += n;
    }
    void string(const std::string& s) {
        u32(uint32_t(s.size() + 1));
        bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
        put(0);
    }
    size_t size() const { return pos_; }

private:
    void put(uint8_t b) {
        if (buf_) buf_[pos_] = b;
        ++pos_;
    }
    uint8_t* buf_;
    size_t pos_ = 0;
};

class CdrIn {
public:
    CdrIn(const uint8_t* p, size_t n, bool little) : p_(p), n_(n), le_(little) {}
    bool align(size_t k) {
        while (pos_ % k) {
            if (pos_ >= n_) return false;
            ++pos_;
        }
        return true;
    }
    bool u8(uint8_t& v) {
        if (pos_ + 1 > n_) return false;
        v = p_[pos_++];
        return true;
    }
    bool u32(uint32_t& v) {
        if (!align(4) || pos_ + 4 > n_) return false;
        const uint8_t* b = p_ + pos_;
        v = le_ ? uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24
                : uint32_t(b[3]) | uint32_t(b[2]) << 8 | uint32_t(b[1]) << 16 | uint32_t(b[0]) << 24;
        pos_ += 4;
        return true;
    }
    bool bytes(std::vector<uint8_t>& out, size_t k) {
        if (pos_ + k > n_) return false;
        out.assign(p_ + pos_, p_ + pos_ + k);
        pos_ += k;
        return true;
    }
    bool raw(uint8_t* out, size_t k) {
        if (pos_ + k > n_) return false;
        std::memcpy(out, p_ + pos_, k);
        pos_ += k;
        return true;
    }
    bool string(std::string& s) {
        uint32_t len;
        if (!u32(len) || len == 0 || pos_ + len > n_ || p_[pos_ + len - 1] != 0) return false;
        s.assign(reinterpret_cast<const char*>(p_ + pos_), len - 1);
        pos_ += len;
        return true;
    }

private:
    const uint8_t* p_;
    size_t n_;
    bool le_;
    size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// AML-IP's types.

struct Id {
    std::string name;
    uint8_t suffix[4] = {0, 0, 0, 0};

    static Id random(const std::string& name) {
        std::random_device rd;
        Id id;
        id.name = name;
        for (auto& b : id.suffix) b = uint8_t(rd());
        return id;
    }
    std::string str() const {
        char buf[16];
        std::snprintf(buf, sizeof buf, ".%02x.%02x.%02x.%02x", suffix[0], suffix[1], suffix[2], suffix[3]);
        return name + buf;
    }
    bool operator==(const Id& o) const {
        return name == o.name && std::memcmp(suffix, o.suffix, 4) == 0;
    }
    bool operator<(const Id& o) const { return str() < o.str(); }
    void write(CdrOut& w) const {
        w.string(name);
        w.bytes(suffix, 4);
    }
    bool read(CdrIn& r) { return r.string(name) && r.raw(suffix, 4); }
};

struct Request {  // amlip::ms_request
    Id client;
    uint32_t task = 0;
    void write(CdrOut& w) const {
        client.write(w);
        w.u32(task);
    }
    bool read(CdrIn& r) { return client.read(r) && r.u32(task); }
};

struct Reference {  // amlip::ms_reference
    Id client;
    uint32_t task = 0;
    Id server;
    void write(CdrOut& w) const {
        client.write(w);
        w.u32(task);
        server.write(w);
    }
    bool read(CdrIn& r) { return client.read(r) && r.u32(task) && server.read(r); }
};

struct Data {  // amlip::ms_data_GENERIC
    Id client;
    uint32_t task = 0;
    Id server;
    std::vector<uint8_t> data;
    void write(CdrOut& w) const {
        client.write(w);
        w.u32(task);
        server.write(w);
        w.u32(uint32_t(data.size()));
        w.u8(1);  // has_been_allocated
        w.bytes(data.data(), data.size());
    }
    bool read(CdrIn& r) {
        uint32_t size;
        uint8_t flag;
        return client.read(r) && r.u32(task) && server.read(r) && r.u32(size) && r.u8(flag) &&
               flag <= 1 && r.bytes(data, size);
    }
};

struct Status {  // amlip::status
    Id id;
    uint32_t kind = 0;
    uint32_t state = 0;
    void write(CdrOut& w) const {
        id.write(w);
        w.u32(kind);
        w.u32(state);
    }
    bool read(CdrIn& r) { return id.read(r) && r.u32(kind) && r.u32(state); }
};

struct Statistics {  // amlip::AMLIP-MODEL-STATISTICS
    std::string name;
    Id server;
    std::vector<uint8_t> data;
    void write(CdrOut& w) const {
        w.string(name);
        w.u32(uint32_t(data.size()));
        server.write(w);
        w.bytes(data.data(), data.size());
    }
    bool read(CdrIn& r) {
        uint32_t size;
        return r.string(name) && r.u32(size) && server.read(r) && r.bytes(data, size);
    }
};

enum Kind : uint32_t {
    KIND_MAIN = 3,
    KIND_COMPUTING = 4,
    KIND_STATUS = 5,
    KIND_EDGE = 7,
    KIND_MODEL_RECEIVER = 9,
    KIND_MODEL_SENDER = 10,
};
enum State : uint32_t { STATE_RUNNING = 1, STATE_DROPPED = 3 };

// A TopicDataType serializing T by hand, as AML-IP does: CDR_LE header, body padded to 4.
template <class T>
class HandType : public TopicDataType {
public:
    explicit HandType(const char* name) {
        setName(name);
        m_typeSize = 4 + (96u << 20);  // the largest sample the tests send, 64 MB, and room
        m_isGetKeyDefined = false;
    }
    static uint32_t body_size(const T& v) {
        CdrOut count(nullptr);
        v.write(count);
        count.align(4);
        return uint32_t(count.size());
    }
    bool serialize(void* data, SerializedPayload_t* payload) override {
        const T& v = *static_cast<T*>(data);
        uint32_t len = 4 + body_size(v);
        if (payload->max_size < len) payload->reserve(len);
        payload->data[0] = 0x00;
        payload->data[1] = 0x01;  // CDR_LE
        payload->data[2] = 0x00;
        payload->data[3] = 0x00;
        CdrOut w(payload->data + 4);
        v.write(w);
        w.align(4);
        payload->length = len;
        payload->encapsulation = CDR_LE;
        return true;
    }
    bool deserialize(SerializedPayload_t* payload, void* data) override {
        if (payload->length < 4 || payload->data[0] != 0 || payload->data[1] > 1) return false;
        CdrIn r(payload->data + 4, payload->length - 4, payload->data[1] == 1);
        return static_cast<T*>(data)->read(r);
    }
    std::function<uint32_t()> getSerializedSizeProvider(void* data) override {
        return [data]() { return 4 + body_size(*static_cast<T*>(data)); };
    }
    void* createData() override { return new T(); }
    void deleteData(void* data) override { delete static_cast<T*>(data); }
    bool getKey(void*, InstanceHandle_t*, bool) override { return false; }
    bool is_bounded() const override { return false; }
    bool is_plain() const override { return false; }
};

// ---------------------------------------------------------------------------------------------
// A node: one participant, typed endpoints created on demand, a wake-up for every reader.

class Wake : public DataReaderListener {
public:
    void on_data_available(DataReader*) override {
        {
            std::lock_guard<std::mutex> l(m);
            ++generation;
        }
        cv.notify_all();
    }
    // Waits until new data may be there, or `ms` pass.
    void wait(uint64_t& seen, int ms) {
        std::unique_lock<std::mutex> l(m);
        cv.wait_for(l, std::chrono::milliseconds(ms), [&] { return generation != seen || g_stop; });
        seen = generation;
    }
    std::mutex m;
    std::condition_variable cv;
    uint64_t generation = 0;
};

// --trust DIR/NAME: DDS Security's built-in plugins with the files `main-node trust` writes
// (Fast DDS reads them as they are).
std::string g_trust;

void secure(DomainParticipantQos& pqos) {
    char* abs = realpath(g_trust.c_str(), nullptr);
    if (!abs) throw std::runtime_error("--trust: no such folder: " + g_trust);
    std::string node = abs;
    std::free(abs);
    std::string dir = node.substr(0, node.rfind('/'));
    auto& p = pqos.properties().properties();
    auto set = [&](const std::string& k, const std::string& v) { p.emplace_back(k, v); };
    set("dds.sec.auth.plugin", "builtin.PKI-DH");
    set("dds.sec.auth.builtin.PKI-DH.identity_ca", "file://" + dir + "/identity_ca.pem");
    set("dds.sec.auth.builtin.PKI-DH.identity_certificate", "file://" + node + "/cert.pem");
    set("dds.sec.auth.builtin.PKI-DH.private_key", "file://" + node + "/key.pem");
    set("dds.sec.access.plugin", "builtin.Access-Permissions");
    set("dds.sec.access.builtin.Access-Permissions.permissions_ca",
        "file://" + dir + "/permissions_ca.pem");
    set("dds.sec.access.builtin.Access-Permissions.governance", "file://" + dir + "/governance.p7s");
    set("dds.sec.access.builtin.Access-Permissions.permissions",
        "file://" + node + "/permissions.p7s");
    set("dds.sec.crypto.plugin", "builtin.AES-GCM-GMAC");
}

class Node {
public:
    Node(int domain, const std::string& name, uint32_t kind) : id(Id::random(name)), kind_(kind) {
        DomainParticipantQos pqos;
        pqos.name(name);
        pqos.transport().use_builtin_transports = false;
        auto udp = std::make_shared<eprosima::fastdds::rtps::UDPv4TransportDescriptor>();
        pqos.transport().user_transports.push_back(udp);
        if (!g_trust.empty()) secure(pqos);
        dp_ = DomainParticipantFactory::get_instance()->create_participant(domain, pqos);
        if (!dp_) throw std::runtime_error("cannot create the participant");
        TypeSupport(new HandType<Request>("amlip::ms_request")).register_type(dp_);
        TypeSupport(new HandType<Reference>("amlip::ms_reference")).register_type(dp_);
        TypeSupport(new HandType<Data>("amlip::ms_data_GENERIC")).register_type(dp_);
        TypeSupport(new HandType<Status>("amlip::status")).register_type(dp_);
        TypeSupport(new HandType<Statistics>("amlip::AMLIP-MODEL-STATISTICS")).register_type(dp_);
        TypeSupport(new HandType<Data>("amlip::rpc_requestGENERIC")).register_type(dp_);
        TypeSupport(new HandType<Data>("amlip::rpc_replyGENERIC")).register_type(dp_);
        pub_ = dp_->create_publisher(PUBLISHER_QOS_DEFAULT);
        sub_ = dp_->create_subscriber(SUBSCRIBER_QOS_DEFAULT);
        status_ = writer("amlip/status", "amlip::status", true);
        publish_status(STATE_RUNNING);
    }
    ~Node() {
        publish_status(STATE_DROPPED);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        dp_->delete_contained_entities();
        DomainParticipantFactory::get_instance()->delete_participant(dp_);
    }

    // AML-IP's QoS, the same for writers and readers: reliable, transient-local, keep all
    // (keep last 1 for status and for the model-manager RPC).
    template <class Q>
    static void amlip_qos(Q& q, bool keep_last_1) {
        q.reliability().kind = RELIABLE_RELIABILITY_QOS;
        q.durability().kind = TRANSIENT_LOCAL_DURABILITY_QOS;
        if (keep_last_1) {
            q.history().kind = KEEP_LAST_HISTORY_QOS;
            q.history().depth = 1;
        } else {
            q.history().kind = KEEP_ALL_HISTORY_QOS;
        }
    }

    DataWriter* writer(const std::string& topic, const char* type, bool keep_last_1 = false) {
        auto it = writers_.find(topic);
        if (it != writers_.end()) return it->second;
        DataWriterQos q = DATAWRITER_QOS_DEFAULT;
        amlip_qos(q, keep_last_1);
        q.publish_mode().kind = SYNCHRONOUS_PUBLISH_MODE;
        q.endpoint().history_memory_policy =
            eprosima::fastrtps::rtps::DYNAMIC_REUSABLE_MEMORY_MODE;
        DataWriter* w = pub_->create_datawriter(topic_(topic, type), q);
        if (!w) throw std::runtime_error("cannot create a writer on " + topic);
        writers_[topic] = w;
        return w;
    }

    DataReader* reader(const std::string& topic, const char* type, bool keep_last_1 = false) {
        DataReaderQos q = DATAREADER_QOS_DEFAULT;
        amlip_qos(q, keep_last_1);
        q.endpoint().history_memory_policy =
            eprosima::fastrtps::rtps::DYNAMIC_REUSABLE_MEMORY_MODE;
        DataReader* r = sub_->create_datareader(topic_(topic, type), q, &wake);
        if (!r) throw std::runtime_error("cannot create a reader on " + topic);
        return r;
    }

    // Takes every sample `r` holds, handing the valid ones to `f`.
    template <class T, class F>
    static void take(DataReader* r, F f) {
        T v;
        SampleInfo info;
        while (r->take_next_sample(&v, &info) == ReturnCode_t::RETCODE_OK) {
            if (info.valid_data) f(v);
        }
    }

    void publish_status(uint32_t state) {
        Status s;
        s.id = id;
        s.kind = kind_;
        s.state = state;
        status_->write(&s);
    }

    Id id;
    Wake wake;

private:
    Topic* topic_(const std::string& name, const char* type) {
        auto it = topics_.find(name);
        if (it != topics_.end()) return it->second;
        Topic* t = dp_->create_topic(name, type, TOPIC_QOS_DEFAULT);
        if (!t) throw std::runtime_error("cannot create topic " + name);
        topics_[name] = t;
        return t;
    }
    uint32_t kind_;
    DomainParticipant* dp_ = nullptr;
    Publisher* pub_ = nullptr;
    Subscriber* sub_ = nullptr;
    DataWriter* status_ = nullptr;
    std::map<std::string, Topic*> topics_;
    std::map<std::string, DataWriter*> writers_;
};

static double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// ---------------------------------------------------------------------------------------------
// Main: for each job, request availability, take the first answer, publish it as the target,
// send the data, wait for the solution. One job at a time; `--async` queues them all first and
// times each from then, as AML-IP's AsyncMainNode does.

// Takes samples of `reader` until one for `req`'s task of this main arrives (into `out`), or
// `deadline` passes; returns whether it arrived.
template <class T>
static bool await_sample(Node& node, DataReader* reader, uint64_t& seen,
                         Clock::time_point deadline, const Request& req, T& out) {
    bool found = false;
    while (!found && !g_stop && Clock::now() < deadline) {
        Node::take<T>(reader, [&](const T& v) {
            if (!found && v.client == req.client && v.task == req.task) {
                out = v;
                found = true;
            }
        });
        if (!found) node.wake.wait(seen, 50);
    }
    return found;
}

// A main on the `job` topics, or (base "inference") an edge node. With `payload`, every job
// carries it and the answer is printed as text; else jobs of `size` letters are checked upper-cased.
// `--async` submits every job at once (AML-IP's AsyncMainNode queues them and sends one at a
// time); with `interval_ms` job i is submitted `i * interval_ms` after the first, as a program
// calling `request_job_solution` in a loop with a sleep does. Each job is timed from its
// submission.
static int run_main(int domain, const std::string& name, int jobs, size_t size, bool async_mode,
                    int interval_ms, int timeout_s, const std::string& base,
                    const std::string& payload) {
    Node node(domain, name, base == "job" ? KIND_MAIN : KIND_EDGE);
    const std::string t = "amlip/" + base;
    DataWriter* requests = node.writer(t + "_request_availability", "amlip::ms_request");
    DataWriter* targets = node.writer(t + "_task_target", "amlip::ms_reference");
    DataReader* replies =
        node.reader(t + "_reply_available_" + node.id.str(), "amlip::ms_reference");
    DataReader* solutions =
        node.reader(t + "_task_solution_" + node.id.str(), "amlip::ms_data_GENERIC");
    std::printf("ready %s\n", node.id.str().c_str());
    std::fflush(stdout);
    std::vector<double> times;
    int ok = 0;
    auto start_all = Clock::now();
    uint64_t seen = 0;
    for (int i = 0; i < jobs && !g_stop; ++i) {
        auto submitted = start_all + std::chrono::milliseconds(int64_t(interval_ms) * i);
        if (Clock::now() < submitted) std::this_thread::sleep_until(submitted);
        auto start = async_mode ? submitted : Clock::now();
        auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
        Request req;
        req.client = node.id;
        req.task = uint32_t(i);
        requests->write(&req);
        trace("request written", i);
        // The first availability answer for this task.
        Reference chosen;
        if (!await_sample(node, replies, seen, deadline, req, chosen)) {
            std::printf("error job %d: no computing node answered within %d s\n", i, timeout_s);
            break;
        }
        trace("reply received", i);
        targets->write(&chosen);
        trace("target written", i);
        Data job;
        job.client = node.id;
        job.task = req.task;
        job.server = chosen.server;
        if (payload.empty()) {
            job.data.resize(size);
            for (size_t k = 0; k < size; ++k) job.data[k] = uint8_t('a' + (i + k) % 26);
        } else {
            job.data.assign(payload.begin(), payload.end());
        }
        node.writer(t + "_task_data_" + chosen.server.str(), "amlip::ms_data_GENERIC")
            ->write(&job);
        trace("data written", i);
        Data sol;
        if (!await_sample(node, solutions, seen, deadline, req, sol)) {
            std::printf("error job %d: no solution from %s within %d s\n", i,
                        chosen.server.str().c_str(), timeout_s);
            break;
        }
        trace("solution received", i);
        if (!payload.empty()) {
            std::printf("answer %d %s\n", i, std::string(sol.data.begin(), sol.data.end()).c_str());
        }
        bool right = !payload.empty() || sol.data.size() == size;
        for (size_t k = 0; payload.empty() && right && k < size; ++k)
            right = sol.data[k] == uint8_t('A' + (i + k) % 26);
        double ms = ms_since(start);
        times.push_back(ms);
        std::printf("job %d task %u bytes %zu ms %.3f by %s%s\n", i, req.task, size, ms,
                    sol.server.str().c_str(), right ? "" : " WRONG");
        std::fflush(stdout);
        ok += right ? 1 : 0;
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted.empty() ? 0 : sorted[sorted.size() / 2];
    std::printf("summary jobs %d ok %d median_ms %.3f total_ms %.3f\n", jobs, ok, median,
                ms_since(start_all));
    std::fflush(stdout);
    return ok == jobs ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Computing node: when idle, answer the oldest request not yet taken; if the main's target
// names us, wait for the data, upper-case it, send the solution.

static int run_computing(int domain, const std::string& name, int max_jobs, int timeout_s) {
    Node node(domain, name, KIND_COMPUTING);
    DataReader* requests = node.reader("amlip/job_request_availability", "amlip::ms_request");
    DataReader* targets = node.reader("amlip/job_task_target", "amlip::ms_reference");
    DataReader* data = node.reader("amlip/job_task_data_" + node.id.str(), "amlip::ms_data_GENERIC");
    std::printf("ready %s\n", node.id.str().c_str());
    std::fflush(stdout);
    std::deque<Request> pending;
    std::set<std::pair<std::string, uint32_t>> taken;
    enum { IDLE, AWAITING_TARGET, AWAITING_DATA } state = IDLE;
    Request current;
    Clock::time_point since = Clock::now();
    int served = 0;
    uint64_t seen = 0;
    auto key = [](const Id& m, uint32_t t) { return std::make_pair(m.str(), t); };
    while (!g_stop && (max_jobs == 0 || served < max_jobs)) {
        Node::take<Request>(requests, [&](const Request& r) { pending.push_back(r); });
        Node::take<Reference>(targets, [&](const Reference& t) {
            taken.insert(key(t.client, t.task));
            if (state == AWAITING_TARGET && t.client == current.client && t.task == current.task) {
                state = t.server == node.id ? AWAITING_DATA : IDLE;
                since = Clock::now();
            }
        });
        Node::take<Data>(data, [&](const Data& d) {
            if (state != AWAITING_DATA || !(d.client == current.client) || d.task != current.task)
                return;
            Data sol = d;
            sol.server = node.id;
            for (auto& b : sol.data) b = uint8_t(std::toupper(b));
            node.writer("amlip/job_task_solution_" + d.client.str(), "amlip::ms_data_GENERIC")
                ->write(&sol);
            ++served;
            std::printf("served %s %u bytes %zu\n", d.client.str().c_str(), d.task, d.data.size());
            std::fflush(stdout);
            state = IDLE;
        });
        if (state != IDLE && Clock::now() - since > std::chrono::seconds(timeout_s)) {
            std::printf("gave up on %s %u\n", current.client.str().c_str(), current.task);
            state = IDLE;
        }
        while (state == IDLE && !pending.empty()) {
            Request r = pending.front();
            pending.pop_front();
            if (taken.count(key(r.client, r.task))) continue;
            Reference answer;
            answer.client = r.client;
            answer.task = r.task;
            answer.server = node.id;
            node.writer("amlip/job_reply_available_" + r.client.str(), "amlip::ms_reference")
                ->write(&answer);
            current = r;
            state = AWAITING_TARGET;
            since = Clock::now();
        }
        node.wake.wait(seen, 50);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Status watcher: prints every node's status.

static int run_status(int domain, const std::string& name, int seconds) {
    Node node(domain, name, KIND_STATUS);
    DataReader* statuses = node.reader("amlip/status", "amlip::status");
    std::printf("ready %s\n", node.id.str().c_str());
    std::fflush(stdout);
    auto end = Clock::now() + std::chrono::seconds(seconds);
    uint64_t seen = 0;
    while (!g_stop && Clock::now() < end) {
        Node::take<Status>(statuses, [&](const Status& s) {
            std::printf("status %s kind %u state %u\n", s.id.str().c_str(), s.kind, s.state);
            std::fflush(stdout);
        });
        node.wake.wait(seen, 100);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Model managers, as AML-IP's collaborative-learning demo uses them. The receiver waits for a
// model announcement, then asks its sender for the model with a plain-string request on
// `rpc_request_model_<sender>` (a writer created right before the write, as AML-IP does), and
// waits `wait_ms` (AML-IP: about 2.5 s) for the reply on `rpc_reply_model_<receiver>`; it tries
// `attempts` times. RPC endpoints are RELIABLE, TRANSIENT_LOCAL, KEEP_LAST 1.

static int run_model_receiver(int domain, const std::string& name, const std::string& request,
                              int attempts, int wait_ms, int timeout_s, const std::string& out) {
    Node node(domain, name, KIND_MODEL_RECEIVER);
    DataReader* stats = node.reader("amlip/model_statistics", "amlip::AMLIP-MODEL-STATISTICS");
    DataReader* replies =
        node.reader("amlip/rpc_reply_model_" + node.id.str(), "amlip::rpc_replyGENERIC", true);
    std::printf("ready %s\n", node.id.str().c_str());
    std::fflush(stdout);
    uint64_t seen = 0;
    auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    Statistics chosen;
    bool announced = false;
    while (!announced && !g_stop && Clock::now() < deadline) {
        Node::take<Statistics>(stats, [&](const Statistics& st) {
            std::printf("statistics %s from %s bytes %zu\n", st.name.c_str(),
                        st.server.str().c_str(), st.data.size());
            if (!announced) chosen = st;
            announced = true;
        });
        if (!announced) node.wake.wait(seen, 50);
    }
    std::fflush(stdout);
    if (!announced) {
        std::printf("error: no model announced within %d s\n", timeout_s);
        return 1;
    }
    for (int k = 1; k <= attempts && !g_stop; ++k) {
        Data req;
        req.client = node.id;
        req.task = uint32_t(k - 1);
        req.server = chosen.server;
        req.data.assign(request.begin(), request.end());
        auto start = Clock::now();
        node.writer("amlip/rpc_request_model_" + chosen.server.str(), "amlip::rpc_requestGENERIC",
                    true)
            ->write(&req);
        Data reply;
        bool got = false;
        auto until = start + std::chrono::milliseconds(wait_ms);
        while (!got && !g_stop && Clock::now() < until) {
            Node::take<Data>(replies, [&](const Data& d) {
                if (d.client == node.id && d.task == req.task && d.server == chosen.server) {
                    reply = d;
                    got = true;
                }
            });
            if (!got) node.wake.wait(seen, 10);
        }
        if (!got) {
            std::printf("timeout attempt %d ms %.3f\n", k, ms_since(start));
            std::fflush(stdout);
            continue;
        }
        std::printf("model attempt %d bytes %zu ms %.3f by %s\n", k, reply.data.size(),
                    ms_since(start), reply.server.str().c_str());
        std::fflush(stdout);
        if (!out.empty()) {
            FILE* f = std::fopen(out.c_str(), "wb");
            if (!f || std::fwrite(reply.data.data(), 1, reply.data.size(), f) != reply.data.size()) {
                std::printf("error: cannot write %s\n", out.c_str());
                if (f) std::fclose(f);
                return 1;
            }
            std::fclose(f);
        }
        return 0;
    }
    return 1;
}

// The sender announces `model` once and answers every request for it with the file's bytes, on
// a reply writer per receiver created right before its first reply.
static int run_model_sender(int domain, const std::string& name, const std::string& model,
                            const std::string& file, int seconds) {
    std::vector<uint8_t> bytes;
    if (FILE* f = std::fopen(file.c_str(), "rb")) {
        uint8_t buf[65536];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
        std::fclose(f);
    } else {
        std::fprintf(stderr, "error: cannot read %s\n", file.c_str());
        return 2;
    }
    Node node(domain, name, KIND_MODEL_SENDER);
    DataWriter* stats = node.writer("amlip/model_statistics", "amlip::AMLIP-MODEL-STATISTICS");
    DataReader* requests =
        node.reader("amlip/rpc_request_model_" + node.id.str(), "amlip::rpc_requestGENERIC", true);
    Statistics st;
    st.name = model;
    st.server = node.id;
    const std::string blob = "statistics of " + model;
    st.data.assign(blob.begin(), blob.end());
    stats->write(&st);
    std::printf("ready %s\n", node.id.str().c_str());
    std::fflush(stdout);
    auto end = Clock::now() + std::chrono::seconds(seconds);
    uint64_t seen = 0;
    while (!g_stop && Clock::now() < end) {
        Node::take<Data>(requests, [&](const Data& r) {
            if (!(r.server == node.id)) return;
            Data reply;
            reply.client = r.client;
            reply.task = r.task;
            reply.server = node.id;
            reply.data = bytes;
            node.writer("amlip/rpc_reply_model_" + r.client.str(), "amlip::rpc_replyGENERIC", true)
                ->write(&reply);
            std::printf("replied %s task %u request %s bytes %zu\n", r.client.str().c_str(), r.task,
                        std::string(r.data.begin(), r.data.end()).c_str(), reply.data.size());
            std::fflush(stdout);
        });
        node.wake.wait(seen, 100);
    }
    return 0;
}

static void usage() {
    std::fprintf(stderr,
                 "usage: peer main|edge|computing|status|model-receiver|model-sender|demo-main|\n"
                 "            demo-computing --domain D [--name N] [--jobs J] [--size S] [--async]\n"
                 "            [--interval-ms I] [--max-jobs M] [--seconds T] [--timeout T]\n"
                 "            [--payload TEXT | --payload-file F] [--request TEXT] [--attempts K]\n"
                 "            [--wait-ms W]\n"
                 "            [--out FILE] [--model NAME] [--file F]\n");
}

int main(int argc, char** argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    std::string role = argv[1];
    int domain = -1, jobs = 10, max_jobs = 0, seconds = 60, timeout_s = 120, interval_ms = 0;
    int attempts = 1, wait_ms = 2500;
    size_t size = 1000;
    bool async_mode = false;
    std::string payload, out, file;
    // AML-IP's demo sends the model's name as a plain string.
    std::string request = "MobileNet V1", model = "MobileNet V1";
    std::string name = role == "main"             ? "FastMain"
                       : role == "edge"           ? "FastEdge"
                       : role == "computing"      ? "FastComputing"
                       : role == "model-receiver" ? "FastModelReceiver"
                       : role == "model-sender"   ? "FastModelSender"
                       : role == "demo-main"      ? "AML-MainNode"
                       : role == "demo-computing" ? "AML-ComputingNode"
                                                  : "FastStatus";
    if (role == "demo-main") {
        // AML-IP's workload demo: an async main sending three text jobs 0.1 s apart.
        async_mode = true;
        jobs = 3;
        interval_ms = 100;
        size = 16;
    }
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage();
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--domain") domain = std::stoi(next());
        else if (a == "--name") name = next();
        else if (a == "--jobs") jobs = std::stoi(next());
        else if (a == "--size") size = std::stoull(next());
        else if (a == "--async") async_mode = true;
        else if (a == "--trace") g_trace = true;
        else if (a == "--trust") g_trust = next();
        else if (a == "--interval-ms") interval_ms = std::stoi(next());
        else if (a == "--max-jobs") max_jobs = std::stoi(next());
        else if (a == "--seconds") seconds = std::stoi(next());
        else if (a == "--timeout") timeout_s = std::stoi(next());
        else if (a == "--payload") payload = next();
        else if (a == "--payload-file") {
            std::string path = next();
            FILE* f = std::fopen(path.c_str(), "rb");
            if (!f) {
                std::fprintf(stderr, "cannot read %s\n", path.c_str());
                return 2;
            }
            char buf[65536];
            size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) payload.append(buf, n);
            std::fclose(f);
        }
        else if (a == "--request") request = next();
        else if (a == "--attempts") attempts = std::stoi(next());
        else if (a == "--wait-ms") wait_ms = std::stoi(next());
        else if (a == "--out") out = next();
        else if (a == "--model") model = next();
        else if (a == "--file") file = next();
        else {
            usage();
            return 2;
        }
    }
    if (domain < 0 || domain > 232) {
        std::fprintf(stderr, "--domain 0..232 is required\n");
        return 2;
    }
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::signal(SIGTERM, [](int) { g_stop = true; });
    // AMLIP_PEER_LOG=1: Fast DDS's own warnings (incompatible QoS, dropped samples) on stderr.
    if (std::getenv("AMLIP_PEER_LOG")) Log::SetVerbosity(Log::Kind::Info);
    try {
        if (role == "main" || role == "demo-main")
            return run_main(domain, name, jobs, size, async_mode, interval_ms, timeout_s, "job",
                            payload);
        if (role == "edge")
            return run_main(domain, name, jobs, size, async_mode, interval_ms, timeout_s,
                            "inference", payload);
        if (role == "computing" || role == "demo-computing")
            return run_computing(domain, name, max_jobs, timeout_s);
        if (role == "status") return run_status(domain, name, seconds);
        if (role == "model-receiver")
            return run_model_receiver(domain, name, request, attempts, wait_ms, timeout_s, out);
        if (role == "model-sender") {
            if (file.empty()) {
                std::fprintf(stderr, "model-sender needs --file F (the model's bytes)\n");
                return 2;
            }
            return run_model_sender(domain, name, model, file, seconds);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    usage();
    return 2;
}
