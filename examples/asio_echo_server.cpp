// A Boost.Asio TCP echo server with kcont attached to its io_context.
//
//   asio_echo_server [--port N] [--idle-ms N] [--slow-ms N] [--run-ms N]
//
// Listens on 127.0.0.1 (port 0: an ephemeral port) and prints "listening on port N". Each line
// a client sends is echoed back, except a line starting with "slow", which is handed to a
// workqueue(9) worker thread (it sleeps --slow-ms, standing in for real work) whose reply is
// posted back to the io_context. A connection idle for --idle-ms is closed by the server: each
// connection owns a kcont::callout, re-armed on every read. The server stops on SIGINT/SIGTERM
// or after --run-ms (0: never) and exits 0.
//
// kcont runs *inside* this server's io_context: kcont::attached(ioc) makes a runtime whose CPU
// is served by ioc.run() on the server's thread; kcont creates no loop thread. The callouts fire
// there (in kcont's interrupt context: they must not block, so they only post). Thread-context
// work (the workqueue) runs on kcont's worker threads.
#include <kcont/attach.h>
#include <kcont/callout.h>
#include <kcont/runtime.h>
#include <kcont/workqueue.h>
#include <utility>  // before boost/asio.hpp: Boost 1.74 uses std::exchange without it

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <thread>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct options {
  unsigned short port = 0;
  long idle_ms = 5000;
  long slow_ms = 200;
  long run_ms = 0;
};

class server;

// One client connection. Lives while an operation (a read, a write, a slow job) holds it.
class session : public std::enable_shared_from_this<session> {
 public:
  session(server& srv, tcp::socket sock);
  ~session();
  void start() {
    arm_idle();
    read_line();
  }
  void close() {
    boost::system::error_code ec;
    sock_.close(ec);
  }
  void send(std::string line);  // on the io_context

 private:
  void arm_idle();
  void read_line();
  void write_next();

  server& srv_;
  tcp::socket sock_;
  asio::streambuf in_;
  std::deque<std::string> out_;
  // kcont's RAII callout: fires on the attached CPU (inside ioc.run()); the destructor halts
  // it, so the handler never outlives the session.
  kcont::callout idle_;
};

// A slow request on its way through the worker: a workqueue(9) item in caller storage.
struct slow_job {
  work wk;  // first member: the worker hands us &wk
  std::shared_ptr<session> s;
  std::string line;
  asio::executor_work_guard<asio::io_context::executor_type> keep_loop;  // the reply comes back
};

class server {
 public:
  server(asio::io_context& loop, kcont::runtime& kc, const options& o)
      : ioc(loop), rt(kc), opt(o), acceptor_(loop, {asio::ip::make_address("127.0.0.1"), o.port}) {
    // Thread context: the workers may sleep. WQ_ELASTIC lets several slow jobs overlap while
    // they sleep in a kcont blocking point.
    if (workqueue_create(&wq, "slow", &server::run_slow, this, PRI_NONE, 0,
                         WQ_MPSAFE | WQ_ELASTIC) != 0)
      throw std::runtime_error("workqueue_create failed");
  }
  ~server() { workqueue_destroy(wq); }  // every job has run (the loop waited for them)

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
      if (ec) return;  // closed by shutdown()
      auto s = std::make_shared<session>(*this, std::move(sock));
      sessions.insert(s);
      s->start();
      accept();
    });
  }

  void shutdown() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto& w : sessions)
      if (auto s = w.lock()) s->close();
    // Drains kcont's CPU right here (we are on the loop's thread) and takes kcont's wait off
    // the io_context: ioc.run() returns once the last session and slow job are done.
    kcont::stop_report r = rt.stop();
    std::printf("kcont stopped: %s\n", r.summary().c_str());
  }

  void submit_slow(std::shared_ptr<session> s, std::string line) {
    auto* job = new slow_job{{}, std::move(s), std::move(line), asio::make_work_guard(ioc)};
    workqueue_enqueue(wq, &job->wk, nullptr);
  }

  asio::io_context& ioc;
  kcont::runtime& rt;
  const options opt;
  std::set<std::weak_ptr<session>, std::owner_less<std::weak_ptr<session>>> sessions;

 private:
  // On a kcont worker thread: may block.
  static void run_slow(work* wk, void* self) {
    auto* job = reinterpret_cast<slow_job*>(wk);
    auto* srv = static_cast<server*>(self);
    {
      kcont::blocking_scope sleeping;  // tells the engine this worker sleeps
      std::this_thread::sleep_for(std::chrono::milliseconds(srv->opt.slow_ms));
    }
    std::string reply = "done: " + job->line;
    asio::post(srv->ioc, [job, reply = std::move(reply)]() mutable {
      job->s->send(std::move(reply));
      delete job;
    });
  }

  tcp::acceptor acceptor_;
  workqueue* wq = nullptr;
};

session::session(server& srv, tcp::socket sock)
    : srv_(srv), sock_(std::move(sock)), idle_(srv.rt, [this] {
        // kcont interrupt context, on the io_context's thread: do not block; post the close.
        asio::post(srv_.ioc, [w = weak_from_this()] {
          if (auto s = w.lock()) s->close();
        });
      }) {}

session::~session() {
  srv_.sessions.erase(weak_from_this());
}

void session::arm_idle() {
  if (srv_.rt.running()) idle_.schedule(std::chrono::milliseconds(srv_.opt.idle_ms));
}

void session::read_line() {
  asio::async_read_until(
      sock_, in_, '\n', [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
        if (ec) {  // the peer left, or we closed it (idle or shutdown)
          self->idle_.stop();
          return;
        }
        std::string line(asio::buffers_begin(self->in_.data()),
                         asio::buffers_begin(self->in_.data()) + static_cast<std::ptrdiff_t>(n));
        self->in_.consume(n);
        self->arm_idle();  // activity: the idle timeout starts again
        if (line.rfind("slow", 0) == 0)
          self->srv_.submit_slow(self, line);
        else
          self->send(line);
        self->read_line();
      });
}

void session::send(std::string line) {
  out_.push_back(std::move(line));
  if (out_.size() == 1) write_next();
}

void session::write_next() {
  asio::async_write(sock_, asio::buffer(out_.front()),
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                      if (ec) return;
                      self->out_.pop_front();
                      if (!self->out_.empty()) self->write_next();
                    });
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    auto value = [&](long& out) {
      if (i + 1 >= argc) return false;
      out = std::strtol(argv[++i], nullptr, 10);
      return true;
    };
    long v = 0;
    if (!std::strcmp(argv[i], "--port") && value(v))
      o.port = static_cast<unsigned short>(v);
    else if (!std::strcmp(argv[i], "--idle-ms") && value(o.idle_ms)) {
    } else if (!std::strcmp(argv[i], "--slow-ms") && value(o.slow_ms)) {
    } else if (!std::strcmp(argv[i], "--run-ms") && value(o.run_ms)) {
    } else {
      std::fprintf(stderr,
                   "usage: %s [--port N] [--idle-ms N] [--slow-ms N] [--run-ms N (0: forever)]\n",
                   argv[0]);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (!parse(argc, argv, opt)) return 2;

  asio::io_context ioc(1);  // the server's loop, run by this thread
  // kcont attached to it: one CPU, served by ioc.run(). Declared after ioc: destroyed first.
  kcont::runtime_config cfg = kcont::attached(ioc);
  cfg.export_stats = true;                                // kcont-stat PID shows it live
  cfg.stuck_handler_threshold = std::chrono::seconds(1);  // a handler stuck that long is reported
  kcont::runtime rt(cfg);
  kcont::runtime_scope scope(rt);  // kernel-style calls on this thread act on rt
  server srv(ioc, rt, opt);
  srv.accept();
  std::printf("listening on port %u\n", static_cast<unsigned>(srv.port()));
  std::fflush(stdout);

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  asio::steady_timer run_timer(ioc);
  auto stop = [&] {
    signals.cancel();
    run_timer.cancel();
    srv.shutdown();
  };
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) stop();
  });
  if (opt.run_ms > 0) {
    run_timer.expires_after(std::chrono::milliseconds(opt.run_ms));
    run_timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) stop();
    });
  }

  ioc.run();  // returns when the server's work is done and kcont was stopped
  std::printf("bye\n");
  return 0;
}
