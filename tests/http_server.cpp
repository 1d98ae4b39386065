#include "http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

namespace stylize::test {
namespace {

int bind_loopback(int& port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind failed");
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

bool send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

}  // namespace

int closed_port() {
  int port = 0;
  int fd = bind_loopback(port);
  close(fd);
  return port;
}

HttpServer::HttpServer(std::map<std::string, std::string> files, ServerBehaviour behaviour)
    : files_(std::move(files)), behaviour_(behaviour) {
  listen_fd_ = bind_loopback(port_);
  listen(listen_fd_, 16);
  thread_ = std::thread([this] { serve(); });
}

HttpServer::~HttpServer() {
  stop_ = true;
  thread_.join();
  close(listen_fd_);
}

std::string HttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<std::string> HttpServer::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void HttpServer::serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    handle(fd);
    close(fd);
  }
}

void HttpServer::handle(int fd) {
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) return;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  const auto sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
  const std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string range;
  const auto rpos = req.find("\r\nRange: bytes=");
  if (rpos != std::string::npos) {
    const auto start = rpos + 15;
    range = req.substr(start, req.find("\r\n", start) - start);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back("GET " + path + (range.empty() ? "" : " range=bytes=" + range));
  }
  auto it = files_.find(path);
  if (it == files_.end()) {
    const std::string body = "not found\n";
    const std::string head = "HTTP/1.1 404 Not Found\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n";
    send_all(fd, head.data(), head.size());
    send_all(fd, body.data(), body.size());
    return;
  }
  const std::string& data = it->second;
  size_t begin = 0, end = data.size();  // [begin, end)
  std::string status = "200 OK", extra;
  if (behaviour_.ranges && !range.empty()) {
    const auto dash = range.find('-');
    begin = std::stoull(range.substr(0, dash));
    if (dash + 1 < range.size()) end = std::min(data.size(), static_cast<size_t>(std::stoull(range.substr(dash + 1))) + 1);
    if (begin >= data.size()) {
      const std::string head = "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" +
                               std::to_string(data.size()) + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      send_all(fd, head.data(), head.size());
      return;
    }
    status = "206 Partial Content";
    extra = "Content-Range: bytes " + std::to_string(begin) + "-" + std::to_string(end - 1) + "/" +
            std::to_string(data.size()) + "\r\n";
  }
  const std::string head = "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(end - begin) + "\r\n" +
                           extra + (behaviour_.ranges ? "Accept-Ranges: bytes\r\n" : "") +
                           "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
  if (!send_all(fd, head.data(), head.size())) return;
  size_t n = end - begin;
  if (behaviour_.stall) {
    send_all(fd, data.data() + begin, std::min<size_t>(n, behaviour_.stall_after));
    sent_ += std::min<size_t>(n, behaviour_.stall_after);
    while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return;
  }
  if (behaviour_.cut_after > 0 && !cut_done_ && n > behaviour_.cut_after) {
    cut_done_ = true;
    n = behaviour_.cut_after;
  }
  if (send_all(fd, data.data() + begin, n)) sent_ += n;
}

}  // namespace stylize::test
