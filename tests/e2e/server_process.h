// Test helper: runs `chai serve` as a child process on ephemeral ports and
// talks to it (gRPC stub, /metrics scrape, signals). Header-only; tests only.
#ifndef CHAI_TESTS_E2E_SERVER_PROCESS_H_
#define CHAI_TESTS_E2E_SERVER_PROCESS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "chai/v1/chai.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace chai::e2e {

// A running `chai serve`; killed (SIGKILL) on destruction if still alive.
class ServerProcess {
 public:
  // Starts the server with `flags` added to --model (default model), --host
  // 127.0.0.1, --port 0, --metrics-port 0 and a small KV cache, and waits
  // for "serving on". Fails the test (fatal) when it does not come up.
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& flags) {
    auto p = std::unique_ptr<ServerProcess>(new ServerProcess());
    p->stderr_path_ = ::testing::TempDir() + "/chai_serve_" + std::to_string(::getpid()) + "_" +
                      std::to_string(counter_++) + ".err";
    std::vector<std::string> args = {
        CHAI_BINARY,        "serve",     "--model",         chai::testing::DefaultModelPath(),
        "--host",           "127.0.0.1", "--port",          "0",
        "--metrics-port",   "0",         "--max-model-len", "512",
        "--kv-cache-bytes", "150000000", "--threads",       "2"};
    args.insert(args.end(), flags.begin(), flags.end());
    int out[2];
    if (::pipe(out) != 0) return nullptr;
    p->pid_ = ::fork();
    if (p->pid_ == 0) {
      ::dup2(out[1], 1);
      const int err = ::open(p->stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(err, 2);
      ::close(out[0]);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    p->stdout_fd_ = out[0];
    // Read "metrics on ..." and "serving on ..." lines (60 s at most: the
    // machine may be busy).
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::string buf;
    while (std::chrono::steady_clock::now() < until) {
      pollfd pfd{p->stdout_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 200) <= 0) continue;
      char c[256];
      const ssize_t n = ::read(p->stdout_fd_, c, sizeof(c));
      if (n <= 0) break;
      buf.append(c, n);
      if (buf.find("serving on ") != std::string::npos && buf.back() == '\n') break;
    }
    std::istringstream lines(buf);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("serving on ", 0) == 0) p->target_ = line.substr(11);
      if (line.rfind("metrics on ", 0) == 0) p->metrics_ = line.substr(11);
    }
    EXPECT_FALSE(p->target_.empty())
        << "server did not start; stdout: " << buf << "\nstderr: " << p->Stderr();
    if (p->target_.empty()) return nullptr;
    return p;
  }

  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }

  const std::string& target() const { return target_; }
  const std::string& metrics_address() const { return metrics_; }
  pid_t pid() const { return pid_; }

  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
  }
  std::unique_ptr<v1::ChaiService::Stub> Stub() const {
    return v1::ChaiService::NewStub(Channel());
  }

  void Signal(int sig) const { ::kill(pid_, sig); }

  // Waits for exit; the exit status, or nullopt on timeout / abnormal end.
  std::optional<int> WaitExit(std::chrono::seconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        if (WIFEXITED(st)) return WEXITSTATUS(st);
        return std::nullopt;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::nullopt;
  }

  std::string Stderr() const {
    std::ifstream in(stderr_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // GET /metrics; "" on failure.
  std::string ScrapeMetrics() const {
    const size_t colon = metrics_.rfind(':');
    if (colon == std::string::npos) return "";
    const int port = std::atoi(metrics_.c_str() + colon + 1);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return "";
    }
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    (void)!::write(fd, req.data(), req.size());
    std::string resp;
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) resp.append(buf, n);
    ::close(fd);
    const size_t body = resp.find("\r\n\r\n");
    return body == std::string::npos ? "" : resp.substr(body + 4);
  }

  // The value of the sample whose name+labels is exactly `series`.
  std::optional<double> Metric(const std::string& series) const {
    std::istringstream lines(ScrapeMetrics());
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(series + " ", 0) == 0)
        return std::strtod(line.c_str() + series.size(), nullptr);
    }
    return std::nullopt;
  }

 private:
  ServerProcess() = default;
  static inline int counter_ = 0;
  pid_t pid_ = -1;
  bool exited_ = false;
  int stdout_fd_ = -1;
  std::string stderr_path_;
  std::string target_;
  std::string metrics_;
};

// A finished stream as the client saw it.
struct Stream {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::vector<std::string> texts;  // one per message
  std::optional<v1::GenerationComplete> complete;
  std::string Text() const {
    std::string t;
    for (const std::string& s : texts) t += s;
    return t;
  }
};

inline Stream ReadStream(grpc::ClientReader<v1::GenerateResponse>* reader) {
  Stream s;
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    s.ids.insert(s.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
    s.texts.push_back(msg.text());
    if (msg.has_complete()) s.complete = msg.complete();
  }
  s.status = reader->Finish();
  return s;
}

inline Stream Generate(v1::ChaiService::Stub& stub, const v1::GenerateRequest& req,
                       grpc::ClientContext* ctx = nullptr) {
  grpc::ClientContext local;
  if (ctx == nullptr) ctx = &local;
  auto reader = stub.Generate(ctx, req);
  return ReadStream(reader.get());
}

inline v1::GenerateRequest Greedy(const std::string& text, int32_t max_tokens) {
  v1::GenerateRequest r;
  r.set_text(text);
  r.mutable_sampling()->set_temperature(0);
  r.mutable_stopping()->set_max_tokens(max_tokens);
  return r;
}

// Polls `pred` every 50 ms up to `timeout`.
template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

inline bool HaveModel() { return std::ifstream(chai::testing::DefaultModelPath()).good(); }

}  // namespace chai::e2e

#endif  // CHAI_TESTS_E2E_SERVER_PROCESS_H_
