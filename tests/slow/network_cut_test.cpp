// A silent network cut under a PostgreSQL connection: the server's host
// stops answering without closing anything (a cable pulled, a node gone, a
// firewall dropping packets). The service's connections carry network
// timeouts (storage/conninfo.hpp); without them a query waits for the
// kernel's TCP timeout, about 15 minutes, and with it a commit and the
// replica's shutdown.
//
// The client sits in a network namespace of its own, joined to this one by
// a veth pair; taking the pair's outer end down drops every packet in
// between, so the client's kernel hears nothing, as on a real network. A
// small relay on the outer end forwards to the PostgreSQL the test command
// provides (pg_virtualenv). Needs root (network namespaces); elsewhere the
// test is skipped and says so.

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <functional>
#include <future>
#include <gtest/gtest.h>
#include <memory>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <pqxx/pqxx>

#include "storage/pg_codec.hpp"

namespace seatledger::test {
namespace {

using namespace std::chrono;

bool run(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

/// A network namespace joined to this one by a veth pair, each end with an
/// address of a /30 chosen by process id; removed on destruction.
class namespaced_link {
public:
  bool create() {
    auto n = static_cast<unsigned>(getpid()) % 16384u;
    auto suffix = std::to_string(getpid() % 100000);
    name_ = "slcut" + suffix;
    outer_ = "slo" + suffix;
    inner_ = "sli" + suffix;
    auto base = "10.232." + std::to_string(n / 64) + ".";
    outer_address_ = base + std::to_string((n % 64) * 4 + 1);
    inner_address_ = base + std::to_string((n % 64) * 4 + 2);
    created_ = run("ip netns add " + name_);
    if (!created_)
      return false;
    return run("ip netns exec " + name_ + " ip link set lo up")
           && run("ip link add " + outer_ + " type veth peer name " + inner_)
           && run("ip link set " + inner_ + " netns " + name_)
           && run("ip addr add " + outer_address_ + "/30 dev " + outer_)
           && run("ip link set " + outer_ + " up")
           && run("ip netns exec " + name_ + " ip addr add " + inner_address_
                  + "/30 dev " + inner_)
           && run("ip netns exec " + name_ + " ip link set " + inner_ + " up");
  }

  ~namespaced_link() {
    if (!created_)
      return;
    run("ip link del " + outer_);
    run("ip netns del " + name_);
  }

  /// Packets between the two ends are dropped from now on, silently.
  bool cut() {
    return run("ip link set " + outer_ + " down");
  }

  const std::string& outer_address() const {
    return outer_address_;
  }

  /// Runs `fn` on a thread inside the namespace: sockets it opens stay
  /// there, whichever thread uses them later.
  template<class F>
  auto inside(F fn) -> decltype(fn()) {
    std::promise<decltype(fn())> result;
    std::thread worker([&] {
      try {
        auto fd = open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
          throw std::runtime_error("cannot enter network namespace " + name_);
        close(fd);
        result.set_value(fn());
      } catch (...) {
        result.set_exception(std::current_exception());
      }
    });
    worker.join();
    return result.get_future().get();
  }

private:
  bool created_ = false;
  std::string name_;
  std::string outer_;
  std::string inner_;
  std::string outer_address_;
  std::string inner_address_;
};

/// Accepts connections on `address` (an ephemeral port) and forwards each,
/// both ways, to PostgreSQL at PGHOST/PGPORT.
class relay {
public:
  explicit relay(const std::string& address) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    inet_pton(AF_INET, address.c_str(), &at.sin_addr);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0
        || listen(listener_, 8) != 0)
      throw std::runtime_error("relay cannot listen on " + address);
    socklen_t size = sizeof at;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&at), &size);
    port_ = ntohs(at.sin_port);
    if (pipe2(stop_, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    accepting_ = std::thread([this] { accept_loop(); });
  }

  ~relay() {
    char byte = 0;
    (void)!write(stop_[1], &byte, 1);
    accepting_.join();
    for (auto& t : pumps_)
      t.join();
    close(listener_);
    close(stop_[0]);
    close(stop_[1]);
  }

  int port() const {
    return port_;
  }

private:
  static int connect_to_postgres() {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(env_or("PGHOST", "localhost").c_str(),
                    env_or("PGPORT", "5432").c_str(), &hints, &found)
        != 0)
      return -1;
    int fd = -1;
    for (auto* a = found; a && fd < 0; a = a->ai_next) {
      fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(found);
    return fd;
  }

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listener_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 || fds[1].revents != 0)
        return;
      int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0)
        continue;
      int server = connect_to_postgres();
      if (server < 0) {
        close(client);
        continue;
      }
      pumps_.emplace_back([this, client, server] { pump(client, server); });
    }
  }

  void pump(int a, int b) {
    char buffer[16384];
    for (bool open = true; open;) {
      pollfd fds[3] = {{a, POLLIN, 0}, {b, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (poll(fds, 3, -1) < 0 || fds[2].revents != 0)
        break;
      for (int i = 0; i < 2 && open; ++i) {
        if (fds[i].revents == 0)
          continue;
        auto n = read(fds[i].fd, buffer, sizeof buffer);
        open = n > 0
               && write(fds[1 - i].fd, buffer, static_cast<size_t>(n)) == n;
      }
    }
    close(a);
    close(b);
  }

  int listener_ = -1;
  int port_ = 0;
  int stop_[2] = {-1, -1};
  std::thread accepting_;
  std::vector<std::thread> pumps_;
};

/// What a query on `conn` came to: "answered" or the error.
std::string query(pqxx::connection_base& conn) {
  try {
    pqxx::nontransaction tx{conn};
    tx.exec("SELECT 1");
    return "answered";
  } catch (const std::exception& e) {
    return e.what();
  }
}

TEST(network_cut, a_query_on_a_silently_cut_connection_fails_within_30_s) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root for a network namespace";
  namespaced_link link;
  if (!link.create())
    GTEST_SKIP() << "cannot create a network namespace and a veth pair here";
  relay to_postgres{link.outer_address()};
  // User, password and database come from the PG* variables.
  auto conninfo = "host=" + link.outer_address() + " port="
                  + std::to_string(to_postgres.port()) + " sslmode=disable";
  // As the service connects, and as it did before it set network timeouts.
  auto service_conn = link.inside(
    [&] { return std::make_shared<storage::detail::pg_connection>(conninfo); });
  auto plain_conn
    = link.inside([&] { return std::make_shared<pqxx::connection>(conninfo); });
  ASSERT_EQ(query(*service_conn), "answered");
  ASSERT_EQ(query(*plain_conn), "answered");

  ASSERT_TRUE(link.cut());
  auto cut_at = steady_clock::now();
  auto service_answer = std::async(std::launch::async,
                                   [&] { return query(*service_conn); });
  auto plain_answer = std::async(std::launch::async,
                                 [&] { return query(*plain_conn); });

  auto service_status = service_answer.wait_for(seconds{60});
  auto waited = duration_cast<milliseconds>(steady_clock::now() - cut_at);
  auto plain_status = plain_answer.wait_until(cut_at + seconds{50});
  // Whatever came of it, neither query may wait on past the test.
  shutdown(service_conn->sock(), SHUT_RDWR);
  shutdown(plain_conn->sock(), SHUT_RDWR);
  auto service_result = service_answer.get();
  auto plain_result = plain_answer.get();

  ASSERT_EQ(service_status, std::future_status::ready)
    << "the service's connection still waited a minute after the cut";
  EXPECT_NE(service_result, "answered");
  // tcp_user_timeout is 30 s: an earlier error would mean the cut was not
  // silent, and the timeout untested.
  EXPECT_GE(waited, seconds{25}) << waited.count() << " ms";
  EXPECT_LE(waited, seconds{45}) << waited.count() << " ms";
  // Without the timeouts the query still waits (for about 15 minutes).
  EXPECT_EQ(plain_status, std::future_status::timeout)
    << "a connection without network timeouts gave up too: " << plain_result;
}

} // namespace
} // namespace seatledger::test
