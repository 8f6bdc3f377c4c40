// The echo server of asio_echo_server.cpp, written with libevent (evconnlistener and
// bufferevents), with kcont attached to its event_base.
//
//   libevent_echo_server [--port N] [--idle-ms N] [--slow-ms N] [--run-ms N]
//
// Each line is echoed back; a line starting with "slow" goes to a workqueue(9) worker that
// sleeps --slow-ms, and its reply comes back to the loop: the worker queues it and activates a
// libevent user event (event_active is thread-safe on a base created after
// evthread_use_pthreads()). A connection idle for --idle-ms is closed by a kcont
// callout that fires on the event_base's thread. SIGINT/SIGTERM or --run-ms end it; exit 0.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <kcont/attach.h>
#include <kcont/callout.h>
#include <kcont/runtime.h>
#include <kcont/workqueue.h>
#include <netinet/in.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace {

struct options {
  unsigned short port = 0;
  long idle_ms = 5000;
  long slow_ms = 200;
  long run_ms = 0;
};

struct server;

// One connection: a bufferevent and an idle callout. Freed when the connection closes and no
// slow job refers to it any more.
struct conn {
  server* srv;
  bufferevent* bev;
  kcont::callout idle;  // fires on the loop's thread, as kcont's CPU
  event* close_ev;      // the callout activates it: the close itself runs as a plain callback
  int jobs = 0;         // slow jobs in flight (loop thread only)
  bool closed = false;
  conn(server* s, bufferevent* b, kcont::runtime& rt);
  ~conn();
};

// A slow request: a workqueue(9) item in caller storage.
struct slow_job {
  work wk;  // first member
  conn* c;
  std::string line;
  std::string reply;
};

struct server {
  options opt;
  event_base* base = nullptr;
  kcont::runtime* rt = nullptr;
  workqueue* wq = nullptr;
  evconnlistener* listener = nullptr;
  std::set<conn*> conns;
  bool stopping = false;
  // Replies coming back from the workers: queued under a lock, then one user event.
  std::mutex done_mu;
  std::deque<slow_job*> done;
  event* done_ev = nullptr;
  int in_flight = 0;  // loop thread only
};

void close_conn(conn* c) {
  if (c->closed) return;
  c->closed = true;
  c->idle.stop();
  bufferevent_free(c->bev);  // closes the socket
  c->bev = nullptr;
  if (c->jobs == 0) delete c;
}

conn::conn(server* s, bufferevent* b, kcont::runtime& rt)
    : srv(s), bev(b), idle(rt, [this] {
        // kcont interrupt context: do not block; let the loop close it as a plain callback.
        event_active(close_ev, EV_READ, 0);
      }) {
  close_ev = event_new(
      s->base, -1, 0, [](evutil_socket_t, short, void* p) { close_conn(static_cast<conn*>(p)); },
      this);
  srv->conns.insert(this);
}

conn::~conn() {
  event_free(close_ev);
  srv->conns.erase(this);
}

void arm_idle(conn* c) {
  if (c->srv->rt->running()) c->idle.schedule(std::chrono::milliseconds(c->srv->opt.idle_ms));
}

// On a kcont worker thread: may block.
void run_slow(work* wk, void* arg) {
  auto* job = reinterpret_cast<slow_job*>(wk);
  auto* s = static_cast<server*>(arg);
  {
    kcont::blocking_scope sleeping;
    std::this_thread::sleep_for(std::chrono::milliseconds(s->opt.slow_ms));
  }
  job->reply = "done: " + job->line;
  {
    std::lock_guard<std::mutex> lk(s->done_mu);
    s->done.push_back(job);
  }
  event_active(s->done_ev, EV_READ, 0);  // thread-safe: the base has locking
}

// Loop thread: replies the workers finished.
void on_done(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<server*>(arg);
  std::deque<slow_job*> batch;
  {
    std::lock_guard<std::mutex> lk(s->done_mu);
    batch.swap(s->done);
  }
  for (slow_job* job : batch) {
    conn* c = job->c;
    --c->jobs;
    --s->in_flight;
    if (!c->closed)
      bufferevent_write(c->bev, job->reply.data(), job->reply.size());
    else if (c->jobs == 0)
      delete c;
    delete job;
  }
}

void on_read(bufferevent* bev, void* arg) {
  auto* c = static_cast<conn*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  size_t n = 0;
  while (char* line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) {
    std::string text(line, n);
    std::free(line);
    text += '\n';
    arm_idle(c);  // activity: the idle timeout starts again
    if (text.rfind("slow", 0) == 0) {
      auto* job = new slow_job{{}, c, text, {}};
      ++c->jobs;
      ++c->srv->in_flight;
      workqueue_enqueue(c->srv->wq, &job->wk, nullptr);
    } else {
      bufferevent_write(bev, text.data(), text.size());
    }
  }
}

void on_event(bufferevent*, short what, void* arg) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) close_conn(static_cast<conn*>(arg));
}

void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* s = static_cast<server*>(arg);
  bufferevent* bev =
      bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
  auto* c = new conn(s, bev, *s->rt);
  bufferevent_setcb(bev, on_read, nullptr, on_event, c);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  arm_idle(c);
}

void shutdown(server* s) {
  if (s->stopping) return;
  s->stopping = true;
  evconnlistener_disable(s->listener);
  for (conn* c : std::set<conn*>(s->conns)) close_conn(c);
  // On the loop's thread: drains kcont's CPU inline and takes kcont's events off the base.
  kcont::stop_report r = s->rt->stop();
  std::printf("kcont stopped: %s\n", r.summary().c_str());
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) return false;
    long v = std::strtol(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--port"))
      o.port = static_cast<unsigned short>(v);
    else if (!std::strcmp(argv[i], "--idle-ms"))
      o.idle_ms = v;
    else if (!std::strcmp(argv[i], "--slow-ms"))
      o.slow_ms = v;
    else if (!std::strcmp(argv[i], "--run-ms"))
      o.run_ms = v;
    else
      return false;
    ++i;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  server s;
  if (!parse(argc, argv, s.opt)) {
    std::fprintf(stderr, "usage: %s [--port N] [--idle-ms N] [--slow-ms N] [--run-ms N]\n",
                 argv[0]);
    return 2;
  }
  evthread_use_pthreads();  // before the base: workers activate events on it
  s.base = event_base_new();
  if (s.base == nullptr) return 1;
  {
    // kcont attached to the base: one CPU, served by event_base_dispatch() on this thread.
    kcont::runtime_config cfg = kcont::attached(s.base);
    cfg.export_stats = true;                                // kcont-stat PID shows it live
    cfg.stuck_handler_threshold = std::chrono::seconds(1);  // a handler stuck that long is reported
    kcont::runtime rt(cfg);
    kcont::runtime_scope scope(rt);
    s.rt = &rt;
    if (workqueue_create(&s.wq, "slow", run_slow, &s, PRI_NONE, 0, WQ_MPSAFE | WQ_ELASTIC) != 0)
      return 1;
    s.done_ev = event_new(s.base, -1, EV_PERSIST, on_done, &s);
    event_add(s.done_ev, nullptr);

    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(s.opt.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s.listener =
        evconnlistener_new_bind(s.base, on_accept, &s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                -1, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    if (s.listener == nullptr) {
      std::perror("listen");
      return 1;
    }
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    getsockname(evconnlistener_get_fd(s.listener), reinterpret_cast<sockaddr*>(&bound), &len);
    std::printf("listening on port %u\n", static_cast<unsigned>(ntohs(bound.sin_port)));
    std::fflush(stdout);

    auto on_stop = [](evutil_socket_t, short, void* p) { shutdown(static_cast<server*>(p)); };
    event* sigint = evsignal_new(s.base, SIGINT, on_stop, &s);
    event* sigterm = evsignal_new(s.base, SIGTERM, on_stop, &s);
    event* run_timer = evtimer_new(s.base, on_stop, &s);
    event_add(sigint, nullptr);
    event_add(sigterm, nullptr);
    if (s.opt.run_ms > 0) {
      timeval tv{static_cast<time_t>(s.opt.run_ms / 1000),
                 static_cast<suseconds_t>((s.opt.run_ms % 1000) * 1000)};
      event_add(run_timer, &tv);
    }

    // Serve until shutdown() ran and every slow job has come back.
    while (!s.stopping || s.in_flight != 0 || !s.conns.empty())
      event_base_loop(s.base, EVLOOP_ONCE);

    event_free(sigint);
    event_free(sigterm);
    event_free(run_timer);
    evconnlistener_free(s.listener);
    event_free(s.done_ev);
    workqueue_destroy(s.wq);
  }  // the runtime (already stopped) goes before the base
  event_base_free(s.base);
  std::printf("bye\n");
  return 0;
}
