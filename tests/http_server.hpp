// A deliberately simple HTTP/1.1 server on 127.0.0.1 for download tests: serves byte strings by
// path, with or without Range support, and can cut or stall a transfer on purpose.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stylize::test {

struct ServerBehaviour {
  bool ranges = true;        // honour "Range: bytes=a-b" with 206
  size_t cut_after = 0;      // first body response closes after this many bytes (0 = never)
  bool stall = false;        // send headers and stall_after bytes, then nothing until stopped
  size_t stall_after = 100;
};

class HttpServer {
 public:
  HttpServer(std::map<std::string, std::string> files, ServerBehaviour behaviour = {});
  ~HttpServer();
  int port() const { return port_; }
  std::string url(const std::string& path) const;
  std::vector<std::string> requests();  // "GET /path range=bytes=a-b" per request
  size_t body_bytes_sent() const { return sent_; }

 private:
  void serve();
  void handle(int fd);
  std::map<std::string, std::string> files_;
  ServerBehaviour behaviour_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> sent_{0};
  bool cut_done_ = false;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

// A port on 127.0.0.1 with nothing listening (bound then closed).
int closed_port();

}  // namespace stylize::test
