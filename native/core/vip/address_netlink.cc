// rtnetlink address changes. The kernel handles a NETLINK_ROUTE request inside the sendto() that
// carries it (under the RTNL lock), so by the time sendto() returns the change is made and its
// ack is queued on the socket: the recv() that follows does not wait for anything.

#include "vip/address_netlink.h"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "io/unique_fd.h"

namespace lb4 {

namespace {

// An ack is small; a dump arrives in messages of at most 32 KiB (the kernel sizes dump buffers
// from the reader's last recv() length, capped at 32 KiB), so one 64 KiB buffer never truncates.
constexpr size_t kReceiveBuffer = 64 * 1024;

// Only the JS thread calls in, but an atomic costs nothing and keeps that an assumption, not a rule.
std::atomic<uint32_t> nextSequence{1};

void appendAttr(std::vector<uint8_t>& msg, uint16_t type, const void* data, size_t length) {
  size_t at = msg.size();  // always NLMSG_ALIGNed: every piece appended is padded to 4 bytes
  rtattr rta{};
  rta.rta_len = static_cast<unsigned short>(RTA_LENGTH(length));
  rta.rta_type = type;
  msg.resize(at + RTA_SPACE(length), 0);
  std::memcpy(&msg[at], &rta, sizeof(rta));
  std::memcpy(&msg[at + RTA_LENGTH(0)], data, length);
}

VipError openRouteSocket(UniqueFd& out) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return VipError::of(errno, "socket");
  int one = 1;
  // Extended ack (Linux 4.12+): an error ack then carries the kernel's reason in words, e.g.
  // "Invalid prefix length". Older kernels refuse the option; errno alone still says enough.
  setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  // Capped ack: an error ack does not echo the whole request back, only its header.
  setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  // The answer is queued before sendto() returns (see above), so this timeout never fires on a
  // working kernel; it only bounds how long a broken one could stall the JS thread.
  timeval timeout{1, 0};
  if (setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) return VipError::of(errno, "setsockopt");
  out = std::move(fd);
  return VipError::none();
}

VipError sendToKernel(int fd, const std::vector<uint8_t>& msg) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;  // nl_pid 0: the kernel. Our own port id is assigned on this first send.
  ssize_t n;
  do {
    n = sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return VipError::of(errno, "sendto");
  return VipError::none();
}

// Reads one datagram into `buf`; `length` is its size. A netlink socket delivers whole messages
// only, so MSG_TRUNC makes recv() return the real size and a truncated read can be told apart.
VipError receive(int fd, std::vector<uint8_t>& buf, int& length) {
  ssize_t n;
  do {
    n = recv(fd, buf.data(), buf.size(), MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  // EAGAIN here is SO_RCVTIMEO expiring: the kernel never answered.
  if (n < 0) return VipError::of(errno == EAGAIN ? ETIMEDOUT : errno, "recv");
  if (static_cast<size_t>(n) > buf.size()) return VipError::of(EMSGSIZE, "recv");
  length = static_cast<int>(n);
  return VipError::none();
}

// The kernel's text from an extended ack, or "" when it sent none.
std::string extackMessage(const nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
  // Uncapped, the request's payload follows the header the ack already holds.
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - NLMSG_HDRLEN;
  offset = NLMSG_ALIGN(offset);
  const auto* base = reinterpret_cast<const uint8_t*>(h);
  while (offset + NLA_HDRLEN <= h->nlmsg_len) {
    nlattr attr;
    std::memcpy(&attr, base + offset, sizeof(attr));
    if (attr.nla_len < NLA_HDRLEN || offset + attr.nla_len > h->nlmsg_len) break;
    if ((attr.nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      const char* text = reinterpret_cast<const char*>(base + offset + NLA_HDRLEN);
      return std::string(text, strnlen(text, attr.nla_len - NLA_HDRLEN));
    }
    offset += NLA_ALIGN(attr.nla_len);
  }
  return {};
}

// Sends one request with NLM_F_ACK and waits for its ack: error 0 is success, a negative one is
// the errno of the refusal.
VipError request(const std::vector<uint8_t>& msg, uint32_t sequence, const char* syscall) {
  UniqueFd fd;
  VipError e = openRouteSocket(fd);
  if (!e.ok() || !(e = sendToKernel(fd.get(), msg)).ok()) return e;
  std::vector<uint8_t> buf(kReceiveBuffer);
  for (;;) {
    int length = 0;
    if (!(e = receive(fd.get(), buf, length)).ok()) return e;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, length); h = NLMSG_NEXT(h, length)) {
      if (h->nlmsg_seq != sequence || h->nlmsg_type != NLMSG_ERROR) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return VipError::of(EBADMSG, "recv");
      int error = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
      if (error == 0) return VipError::none();
      return VipError::of(-error, syscall, extackMessage(h));
    }
  }
}

VipError interfaceIndex(const std::string& ifname, int& out) {
  // 0 with ENODEV for an unknown name, also for one too long to be a name (IFNAMSIZ).
  unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) return VipError::of(errno ? errno : ENODEV, "if_nametoindex");
  out = static_cast<int>(index);
  return VipError::none();
}

}  // namespace

std::vector<uint8_t> buildAddressRequest(uint16_t type, uint32_t sequence, int ifindex, const VipAddress& address) {
  std::vector<uint8_t> msg(NLMSG_SPACE(sizeof(ifaddrmsg)), 0);
  nlmsghdr hdr{};
  hdr.nlmsg_type = type;
  // NLM_F_EXCL makes an address that is already there an EEXIST rather than a silent update,
  // so the caller learns whether it added the address or found it (left by a crash).
  hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0);
  hdr.nlmsg_seq = sequence;
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(address.family);
  // The prefix decides the route the kernel adds with an IPv4 address (192.0.2.10/24 brings
  // 192.0.2.0/24 dev IF), and removal must name the same prefix or the kernel finds no match.
  ifa.ifa_prefixlen = address.prefix;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  // IPv6 runs duplicate address detection on a new address: for about a second it is
  // "tentative", answers no neighbour solicitation and cannot be a source address, and if the
  // old active node still has it (a crashed node keeps its addresses) DAD fails and the address
  // stays unusable. A VIP moves on purpose, so skip DAD, as keepalived does.
  if (address.family == AF_INET6 && type == RTM_NEWADDR) ifa.ifa_flags = IFA_F_NODAD;
  std::memcpy(&msg[NLMSG_HDRLEN], &ifa, sizeof(ifa));
  // IFA_LOCAL is the interface's address; IFA_ADDRESS is the far end on a point-to-point link
  // and the same address elsewhere. `ip addr` sends both, and IPv4 removal matches on IFA_LOCAL.
  appendAttr(msg, IFA_LOCAL, address.bytes, address.length());
  appendAttr(msg, IFA_ADDRESS, address.bytes, address.length());
  hdr.nlmsg_len = static_cast<uint32_t>(msg.size());
  std::memcpy(msg.data(), &hdr, sizeof(hdr));
  return msg;
}

VipError addAddress(const std::string& ifname, const VipAddress& address) {
  int ifindex = 0;
  VipError e = interfaceIndex(ifname, ifindex);
  if (!e.ok()) return e;
  uint32_t sequence = nextSequence++;
  return request(buildAddressRequest(RTM_NEWADDR, sequence, ifindex, address), sequence, "RTM_NEWADDR");
}

VipError removeAddress(const std::string& ifname, const VipAddress& address) {
  int ifindex = 0;
  VipError e = interfaceIndex(ifname, ifindex);
  if (!e.ok()) return e;
  // The kernel answers EADDRNOTAVAIL when no address matches. Removing an IPv4 address that is
  // the primary of its subnet also removes that subnet's secondaries, unless
  // net.ipv4.conf.IF.promote_secondaries is set: a VIP added after the node's own address in
  // the same subnet is a secondary, so removing it touches nothing else.
  uint32_t sequence = nextSequence++;
  return request(buildAddressRequest(RTM_DELADDR, sequence, ifindex, address), sequence, "RTM_DELADDR");
}

VipError hasAddress(const std::string& ifname, const VipAddress& address, bool& present) {
  present = false;
  int ifindex = 0;
  VipError e = interfaceIndex(ifname, ifindex);
  if (!e.ok()) return e;
  UniqueFd fd;
  if (!(e = openRouteSocket(fd)).ok()) return e;

  // A dump of every address of the family; the interface is filtered here, which works on every
  // kernel (in-kernel filtering needs NETLINK_GET_STRICT_CHK, Linux 4.20+).
  uint32_t sequence = nextSequence++;
  std::vector<uint8_t> msg(NLMSG_SPACE(sizeof(ifaddrmsg)), 0);
  nlmsghdr hdr{};
  hdr.nlmsg_len = static_cast<uint32_t>(msg.size());
  hdr.nlmsg_type = RTM_GETADDR;
  hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  hdr.nlmsg_seq = sequence;
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(address.family);
  std::memcpy(msg.data(), &hdr, sizeof(hdr));
  std::memcpy(&msg[NLMSG_HDRLEN], &ifa, sizeof(ifa));
  if (!(e = sendToKernel(fd.get(), msg)).ok()) return e;

  std::vector<uint8_t> buf(kReceiveBuffer);
  for (;;) {
    int length = 0;
    if (!(e = receive(fd.get(), buf, length)).ok()) return e;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, length); h = NLMSG_NEXT(h, length)) {
      if (h->nlmsg_seq != sequence) continue;
      if (h->nlmsg_type == NLMSG_DONE) {
        // A dump that failed part way ends with NLMSG_DONE carrying a negative errno.
        int error = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) std::memcpy(&error, NLMSG_DATA(h), sizeof(int));
        return error < 0 ? VipError::of(-error, "RTM_GETADDR") : VipError::none();
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        int error = h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) ? static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error : -EBADMSG;
        return VipError::of(-error, "RTM_GETADDR", extackMessage(h));
      }
      if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) continue;
      const auto* found = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
      if (static_cast<int>(found->ifa_index) != ifindex || found->ifa_family != address.family) continue;
      // IFA_LOCAL when present (IPv4, and IPv6 on point-to-point links), else IFA_ADDRESS.
      const void* local = nullptr;
      const void* addr = nullptr;
      int attrLength = static_cast<int>(IFA_PAYLOAD(h));
      for (auto* rta = IFA_RTA(found); RTA_OK(rta, attrLength); rta = RTA_NEXT(rta, attrLength)) {
        if (RTA_PAYLOAD(rta) != address.length()) continue;
        if (rta->rta_type == IFA_LOCAL) local = RTA_DATA(rta);
        if (rta->rta_type == IFA_ADDRESS) addr = RTA_DATA(rta);
      }
      const void* mine = local ? local : addr;
      // Closing the socket with the rest of the dump unread is fine: it is this call's own.
      if (mine && std::memcmp(mine, address.bytes, address.length()) == 0) {
        present = true;
        return VipError::none();
      }
    }
  }
}

}  // namespace lb4
