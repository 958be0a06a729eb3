// Internals of erl::gen_server shared by the two ways of running a server (own thread, inline)
// and by servers that host another server's callbacks (the code server's module servers).
#pragma once

#include <erl/gen_server.hpp>

#include "services/sys_protocol.hpp"

#include <optional>

namespace erl::gen_server {

struct detail_access {
    // One message: {system, From, Req} (to `sys`), '$gen_call', '$gen_cast' or anything else
    // (handle_info). A sys:terminate sets the stop reason after the reply is sent.
    static void handle(server& s, erl::detail::sys::protocol& sys, const term& t);
    static std::optional<term>& stop_reason(server& s) { return s.stop_reason_; }
    static void set_self(server& s, mailbox mb) { s.mb_ = std::move(mb); }
    static const mailbox& self(const server& s) { return s.mb_; }
    // s.state(), or the default {cpp_server, <<"TypeName">>}.
    static term state_of(const server& s);
    // The protocol of a server started on `mb` (no link: its parent is itself, as gen.erl's
    // init_it/6 sets it for gen_server:start).
    static erl::detail::sys::protocol make_sys(const mailbox& mb);
};

// sys's view of a gen_server (gen_server.erl system_get_state/1, system_replace_state/2,
// system_code_change/4).
class sys_owner final : public erl::detail::sys::owner {
  public:
    explicit sys_owner(server& s) : s_(s) {}
    term get_state() override { return detail_access::state_of(s_); }
    term replace_state(const term& state_fun) override { return s_.replace_state(state_fun); }
    std::optional<term> code_change(const term&, const term& old_vsn, const term& extra) override {
        return s_.code_change(old_vsn, get_state(), extra);
    }
    std::optional<atom> registered_name() const override {
        return detail_access::self(s_).registered_name();
    }

  private:
    server& s_;
};

}  // namespace erl::gen_server
