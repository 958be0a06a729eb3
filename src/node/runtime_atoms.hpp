// The atoms the node runtime and its services use, interned once (atoms are immortal): one
// table instead of a function or a literal per use. Read them as A().noproc, A().gen_call, ...
#pragma once

#include <erl/term.hpp>

namespace erl::detail {

struct runtime_atoms {
    // Signals (Erlang reference manual, "Processes").
    atom noproc{"noproc"}, noconnection{"noconnection"}, kill{"kill"}, killed{"killed"},
        exit_tag{"EXIT"}, down{"DOWN"}, process{"process"}, nodedown{"nodedown"}, normal{"normal"},
        shutdown{"shutdown"}, notsup{"notsup"}, spawn_reply{"spawn_reply"}, abandoned{"abandoned"},
        badopt{"badopt"};
    // gen / gen_server / net_kernel (gen.erl, net_kernel.erl).
    atom gen_call{"$gen_call"}, gen_cast{"$gen_cast"}, alias{"alias"}, net_kernel{"net_kernel"},
        is_auth{"is_auth"}, yes{"yes"}, gen_server{"gen_server"}, call{"call"},
        infinity{"infinity"}, timeout{"timeout"};
    // rpc / erpc / rex (rpc.erl, erpc.erl).
    atom error{"error"}, exit{"exit"}, throw_{"throw"}, return_{"return"}, undef{"undef"},
        badarg{"badarg"}, erpc{"erpc"}, execute_call{"execute_call"}, execute_cast{"execute_cast"},
        exception{"exception"}, signal{"signal"}, badrpc{"badrpc"}, block_call{"block_call"},
        cast{"cast"}, rex{"rex"}, features_request{"features_request"},
        features_reply{"features_reply"}, monitor{"monitor"}, link{"link"},
        system_limit{"system_limit"}, ok{"ok"}, cpp_exception{"cpp_exception"}, nocatch{"nocatch"},
        user{"user"}, erlang{"erlang"}, node{"node"}, nodes{"nodes"}, reply{"reply"};
    // The io protocol of the group leader (io.erl).
    atom io_request{"io_request"}, io_reply{"io_reply"}, put_chars{"put_chars"},
        requests{"requests"}, enotsup{"enotsup"}, unicode{"unicode"}, latin1{"latin1"};
    // Supervisors (supervisor.erl count_children/1, which_children/1).
    atom sup_request{"$erlcpp_sup_request"}, specs{"specs"}, active{"active"},
        supervisors{"supervisors"}, workers{"workers"}, not_supported{"not_supported"},
        failed_to_start_child{"failed_to_start_child"}, which_children{"which_children"},
        count_children{"count_children"}, worker{"worker"}, supervisor{"supervisor"},
        restarting{"restarting"}, undefined{"undefined"};
};

inline const runtime_atoms& A() {
    static const runtime_atoms a;
    return a;
}

}  // namespace erl::detail
