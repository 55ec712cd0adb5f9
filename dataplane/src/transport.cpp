// The real kernel's side of the Transport: one libmnl socket for batches and dumps.
#include "zonewall/dataplane/transport.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <optional>

#include "c_handle.h"
#include "wire.h"
#include "zonewall/base/netns.h"

namespace zonewall::dataplane {
namespace {

class NetlinkTransport final : public Transport {
 public:
  explicit NetlinkTransport(MnlSocketPtr sock) : sock_(std::move(sock)) {}

  std::expected<void, Error> commit(const Batch& batch) override {
    int fd = mnl_socket_get_fd(sock_.get());
    // The whole batch in one sendmsg: the kernel needs a send buffer that large.
    int size = static_cast<int>(std::min<size_t>(batch.bytes.size() + 65536, 1u << 30));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
    int rcv = 16 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    ssize_t sent = mnl_socket_sendto(sock_.get(), batch.bytes.data(), batch.bytes.size());
    if (sent < 0) {
      int err = errno;
      return fail(Error::Code::kKernel, "sending the netlink batch", err);
    }
    // The kernel processes the batch within sendmsg: every ack is queued when it returns.
    std::vector<char> buf(1 << 20);
    std::uint32_t port = mnl_socket_get_portid(sock_.get());
    std::optional<Error> first_error;
    size_t acks = 0;
    const size_t expected = batch.messages() - 2;  // begin and end are not acknowledged
    while (acks < expected && !first_error) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) {
        return fail(Error::Code::kKernel,
                    fmt::format("no answer from the kernel after {} of {} acks", acks, expected),
                    ETIMEDOUT);
      }
      ssize_t n = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
      if (n < 0) {
        int err = errno;
        return fail(Error::Code::kKernel, "reading netlink acks", err);
      }
      for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
           mnl_nlmsg_ok(nlh, static_cast<int>(n));
           nlh = mnl_nlmsg_next(nlh, reinterpret_cast<int*>(&n))) {
        if (nlh->nlmsg_pid != port || nlh->nlmsg_type != NLMSG_ERROR) continue;
        auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        ++acks;
        if (e->error != 0 && !first_error) {
          // seq → the message's description
          std::uint32_t idx = nlh->nlmsg_seq - batch.first_seq;
          std::string what = idx < batch.contents.size()
                                 ? batch.contents[idx].text
                                 : fmt::format("message {}", nlh->nlmsg_seq);
          // The extended ack: the kernel's own words, and which attribute (element) it refused.
          std::string said;
          if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
            size_t tlvs =
                sizeof(nlmsgerr) +
                ((nlh->nlmsg_flags & NLM_F_CAPPED) ? 0 : e->msg.nlmsg_len - sizeof(nlmsghdr));
            forEachAttr(mnl_nlmsg_get_payload_offset(nlh, tlvs), mnl_nlmsg_get_payload_tail(nlh),
                        [&](nlattr* a) {
                          if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG) said = mnl_attr_get_str(a);
                          if (mnl_attr_get_type(a) == NLMSGERR_ATTR_OFFS) {
                            if (auto el = explainElement(batch, idx, mnl_attr_get_u32(a)))
                              what = *el;
                          }
                        });
          }
          first_error = Error{Error::Code::kKernel,
                              "the kernel rejected " + what +
                                  (said.empty() ? "" : " (" + said + ")") + "; nothing was changed",
                              {},
                              -e->error};
        }
      }
    }
    // Drain what is left (acks after an error), so the socket is clean for the next batch.
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) break;
      if (mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size()) <= 0) break;
    }
    if (first_error) return std::unexpected(*first_error);
    return {};
  }

  std::expected<TableSnapshot, Error> read(const std::string& table) override {
    DumpDecoder decoder(table);
    auto table_dump = dump(NFT_MSG_GETTABLE, "", "", decoder);
    if (!table_dump) {
      return std::unexpected(table_dump.error());
    }
    // ENOENT from a table-scoped dump: the table does not exist (or vanished meanwhile).
    auto missing = [](const Error& e) { return e.sys_errno == ENOENT; };
    auto chain_dump = dump(NFT_MSG_GETCHAIN, table, "", decoder);
    auto rule_dump = chain_dump ? dump(NFT_MSG_GETRULE, table, "", decoder) : chain_dump;
    auto set_dump = rule_dump ? dump(NFT_MSG_GETSET, table, "", decoder) : rule_dump;
    TableSnapshot& snap = decoder.snapshot();
    if (!set_dump) {
      if (missing(set_dump.error())) {
        return TableSnapshot{.aside_exists = snap.aside_exists};  // exists = false
      }
      return std::unexpected(set_dump.error());
    }
    snap.exists = true;
    std::vector<std::string> names;
    for (const auto& [name, set] : snap.sets) names.push_back(name);
    for (const std::string& name : names) {
      if (auto el_dump = dump(NFT_MSG_GETSETELEM, table, name, decoder); !el_dump) {
        return std::unexpected(el_dump.error());
      }
    }
    return std::move(snap);
  }

 private:
  // One dump request (table-scoped; for set elements, the set too), every answer to `decoder`.
  std::expected<void, Error> dump(std::uint16_t type, const std::string& table,
                                  const std::string& set, DumpDecoder& decoder) {
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 8);
    std::uint32_t seq = ++dump_seq_;
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, NFPROTO_INET,
                                          static_cast<std::uint16_t>(NLM_F_DUMP | NLM_F_ACK), seq);
    if (type == NFT_MSG_GETSETELEM) {
      NftnlSetPtr s(nftnl_set_alloc());
      nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
      nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
      nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    } else if (type == NFT_MSG_GETSET) {
      NftnlSetPtr s(nftnl_set_alloc());
      nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
      nftnl_set_nlmsg_build_payload(nlh, s.get());
    } else if (type == NFT_MSG_GETRULE) {
      NftnlRulePtr r(nftnl_rule_alloc());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
    } else if (type == NFT_MSG_GETCHAIN) {
      NftnlChainPtr c(nftnl_chain_alloc());
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
      nftnl_chain_nlmsg_build_payload(nlh, c.get());
    }
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) {
      int err = errno;
      return fail(Error::Code::kKernel, "sending a dump request", err);
    }
    auto cb = [](const nlmsghdr* h, void* data) -> int {
      static_cast<DumpDecoder*>(data)->add(h, h->nlmsg_len);
      return MNL_CB_OK;
    };
    std::uint32_t port = mnl_socket_get_portid(sock_.get());
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
      if (n < 0) {
        int err = errno;
        return fail(Error::Code::kKernel, "reading a dump", err);
      }
      int rc = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, port, cb, &decoder);
      if (rc == MNL_CB_STOP) return {};
      if (rc < 0) {
        int err = errno;
        return fail(Error::Code::kKernel, "dumping table " + table, err);
      }
    }
  }

  MnlSocketPtr sock_;
  std::uint32_t dump_seq_ = 0x40000000;
};

}  // namespace

std::expected<std::unique_ptr<Transport>, Error> openNetlink(const std::string& netns_path) {
  // A socket belongs to the namespace it was created in: enter the target, open, come back.
  std::optional<NetnsGuard> inside;
  if (!netns_path.empty()) {
    auto entered = NetnsGuard::enter(netns_path);
    if (!entered) {
      return std::unexpected(entered.error());
    }
    inside.emplace(std::move(*entered));
  }
  MnlSocketPtr sock(mnl_socket_open(NETLINK_NETFILTER));
  int open_err = errno;
  bool bound = sock && mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) == 0;
  int bind_err = errno;
  inside.reset();
  if (!sock) {
    return fail(Error::Code::kIo, "opening the netfilter netlink socket", open_err);
  }
  if (!bound) {
    return fail(Error::Code::kIo, "binding the netfilter netlink socket", bind_err);
  }
  // Extended acks name the attribute (the set element) the kernel refused; capped acks do not
  // echo the refused message back.
  int on = 1;
  setsockopt(mnl_socket_get_fd(sock.get()), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  setsockopt(mnl_socket_get_fd(sock.get()), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  return std::unique_ptr<Transport>(new NetlinkTransport(std::move(sock)));
}

}  // namespace zonewall::dataplane
