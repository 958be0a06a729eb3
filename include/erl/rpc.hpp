// erl::rpc — remote procedure calls between C++ nodes and Erlang/Elixir nodes, both ways.
//
// Serving (BEAM -> C++): an erl::rpc::server holds a registry of C++ functions named
// Module:Function/Arity. OTP's rpc:call/cast/multicall/async_call and erpc:call/cast/multicall/
// send_request reach them (they send SPAWN_REQUEST for erpc:execute_call/4 or execute_cast/3;
// the server answers as a BEAM node would), and so do older clients that use the registered
// `rex` process (erl_call, ei_rpc, gen_server:call({rex, Node}, {call, M, F, A, GL})).
//
//     erl::rpc::server rpc(node);
//     rpc.add("demo", "add", [](std::int64_t a, std::int64_t b) { return a + b; });
//     rpc.add("demo", "echo", [](const erl::term& t) { return t; });
//     %% in erl:  rpc:call('cpp@host', demo, add, [1, 2])  ->  3
//
// Results and failures are what a BEAM caller would see from a BEAM node:
//   - a function that is not registered raises error:undef (stack [{M,F,Args,[]}]);
//   - arguments that do not convert to the C++ parameter types raise error:badarg;
//   - a handler fails with erl::rpc::raise_error / raise_exit / raise_throw, which map to the
//     Erlang classes error / exit / throw; any other C++ exception becomes
//     error:{cpp_exception, <<"what()">>}.
//
// Calling (C++ -> BEAM): erl::rpc::call / cast / multicall run a function on another node via
// spawn_request of erpc:execute_call/4 (falling back to the `rex` server for peers without the
// SPAWN distribution flag) and return the result or the Erlang exception as data.
//
// Thread safety: all functions may be called from any thread; the blocking client calls not
// from the node's I/O threads (their async_ forms may be used anywhere). Handlers run on the
// server's worker pool unless registered with function_options{.run = run_on::io_thread} (quick,
// non-blocking functions only; see there).
#pragma once

#include <erl/detail/async.hpp>
#include <erl/error.hpp>
#include <erl/mailbox.hpp>
#include <erl/term.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace erl {
class node;
namespace detail {
struct access;
}
}  // namespace erl

namespace erl::rpc {

// ---------------------------------------------------------------------------------------------
// Erlang exceptions as C++ values.

// An Erlang exception: class (error, exit or throw), reason and, for errors, a stack trace.
// Thrown by handlers (see raise_*) and returned (as data) by the client functions.
struct exception_info {
    atom class_;      // error | exit | throw
    term reason;      // the exception reason as erpc:call raises it (see call_result)
    term stacktrace;  // [] unless class_ is error and a stack is known
    error_code code;  // for erpc-level failures: timeout, noconnection, notsup, ...; else {}

    // {Class, Reason}: one element of erpc:multicall's result list.
    term to_term() const;
    // What rpc:call returns for this failure: {badrpc, ...} (or the thrown value).
    term to_badrpc() const;
    // "error: {exception,badarg,[...]}"
    std::string to_string() const;
};

// Thrown by a handler to fail like an Erlang function does.
class erlang_exception : public std::exception {
  public:
    erlang_exception(atom cls, term reason, term stack = term());
    const char* what() const noexcept override { return what_.c_str(); }
    atom class_of() const noexcept { return class_; }
    const term& reason() const noexcept { return reason_; }
    const term& stacktrace() const noexcept { return stack_; }

  private:
    atom class_;
    term reason_;
    term stack_;
    std::string what_;
};

// erlang:error(Reason): the caller sees error {exception, Reason, Stack} (erpc) or
// {badrpc, {'EXIT', {Reason, Stack}}} (rpc). The stack is [{M, F, Arity, []}] of the handler.
[[noreturn]] void raise_error(term reason);
// exit(Reason): erpc raises exit {exception, Reason}; rpc returns {badrpc, {'EXIT', Reason}}.
[[noreturn]] void raise_exit(term reason);
// throw(Value): erpc rethrows Value; rpc:call returns Value.
[[noreturn]] void raise_throw(term value);

// ---------------------------------------------------------------------------------------------
// Server side.

// What a handler knows about the call it serves. Valid for the duration of the call (for async
// handlers: until the coroutine completes).
class call_context {
  public:
    erl::node& node() const noexcept { return *node_; }
    // The process running this call: for erpc a fresh process per call (its pid is what the
    // caller's monitor names); for rex the rex service.
    const pid& self() const noexcept { return self_; }
    // The calling process (a pid), or [] if unknown.
    const term& caller() const noexcept { return caller_; }
    atom module() const noexcept { return module_; }
    atom function() const noexcept { return function_; }
    const term& args() const noexcept { return args_; }
    // Executor of the worker pool: use it for timers in async handlers.
    const boost::asio::any_io_executor& executor() const noexcept { return exec_; }
    // True once the process running the call was killed (e.g. its linked caller died). The
    // result of a cancelled call is discarded.
    bool cancelled() const noexcept;

  private:
    friend struct erl::detail::access;  // the rpc server makes them (src/node/access.hpp)
    call_context(erl::node* n, pid self, term caller, atom m, atom f, term args,
                 boost::asio::any_io_executor exec, std::shared_ptr<erl::detail::process> proc)
        : node_(n),
          self_(std::move(self)),
          caller_(std::move(caller)),
          module_(m),
          function_(f),
          args_(std::move(args)),
          exec_(std::move(exec)),
          proc_(std::move(proc)) {}

    erl::node* node_;
    pid self_;
    term caller_;
    atom module_;
    atom function_;
    term args_;
    boost::asio::any_io_executor exec_;
    std::shared_ptr<erl::detail::process> proc_;  // null for rex calls
};

// Handlers on raw terms: `args` is the argument list as received (a proper list of `arity`).
using sync_handler = std::function<term(call_context&, std::span<const term> args)>;
using async_handler =
    std::function<boost::asio::awaitable<term>(call_context&, std::vector<term> args)>;

// Where a registered function runs — the choice between a dirty NIF and a normal NIF.
enum class run_on : std::uint8_t {
    // The server's worker pool (default). A handler may block or take long: it holds one pool
    // thread while the connection goes on reading and other calls complete.
    pool,
    // Directly on the node's I/O thread that decoded the request, before that connection reads
    // its next message; the answer goes out in the same write as the SPAWN_REPLY. This saves
    // two thread hand-offs per call, but while the handler runs nothing else is read from that
    // connection (and other connections on the same I/O thread wait): use it only for quick
    // functions that never block (no sleeping, locks held by slow code, blocking I/O, client
    // calls such as erl::rpc::call or mailbox::receive, which would deadlock). Results, errors
    // (raise_*, badarg, C++ exceptions) and undef are exactly those of the pool path.
    // Coroutine handlers always run on the pool (add() throws std::invalid_argument when asked
    // to run one on an I/O thread).
    io_thread,
};

// Per-function registration options (server::add / add_raw).
struct function_options {
    run_on run = run_on::pool;
};

struct server_options {
    unsigned threads = 4;   // worker pool size (sync handlers occupy one thread each)
    bool serve_rex = true;  // register `rex` for erl_call / ei_rpc / old rpc clients
    bool builtins = true;   // erlang:node/0 and erlang:nodes/0 answer as on a BEAM node
    // The node answers BEAM's introspection calls about itself (erlang:processes/0,
    // process_info/1,2, memory/0,1, system_info/1, statistics/1, ...) and serves etop's
    // backend (observer_backend:vsn/0, etop_collect/1); docs/observability.md. Costs nothing
    // until called.
    bool introspection = true;
};

namespace detail {
struct server_state;
}  // namespace detail

// One rpc server per node. Create it right after node::start(), before peers call in.
// Registration may happen at any time and from any thread.
class server {
  public:
    explicit server(erl::node& n, server_options opts = {});
    // Stops serving: later SPAWN_REQUESTs for erpc get the error reply `notsup`, rex is
    // unregistered; waits for handlers that are running, on the pool and on I/O threads (after
    // node::stop(): abandons suspended coroutine handlers instead of waiting for them). Must
    // not be called from a handler.
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Registers fn as Module:Function/N. fn is any callable
    //     R fn([call_context&,] A1, ..., AN)                       (sync, runs on the pool)
    //     boost::asio::awaitable<R> fn([call_context&,] A1, ..., AN) (coroutine on the pool)
    // where each Ai converts from a term with erl::from_term (a mismatch raises error:badarg)
    // and R converts with erl::to_term (void returns the atom ok). Replaces an earlier entry.
    // opts.run = run_on::io_thread runs a quick sync function inline (see run_on):
    //     rpc.add("demo", "echo", [](const erl::term& t) { return t; },
    //             {.run = erl::rpc::run_on::io_thread});
    template <class F>
    void add(std::string_view module, std::string_view function, F&& fn,
             function_options opts = {});

    // Raw registration (the arguments are passed as received).
    void add_raw(atom module, atom function, unsigned arity, sync_handler fn,
                 function_options opts = {});
    void add_raw_async(atom module, atom function, unsigned arity, async_handler fn);
    bool remove(atom module, atom function, unsigned arity);
    bool contains(atom module, atom function, unsigned arity) const;

    boost::asio::any_io_executor executor() const;
    erl::node& owner() const noexcept { return node_; }

  private:
    erl::node& node_;
    std::shared_ptr<detail::server_state> st_;
};

// ---------------------------------------------------------------------------------------------
// Client side.

// The outcome of a call: the function's value, or an exception as erpc:call would raise it:
//   throw Value                         the function threw Value
//   exit {exception, Reason}            the function called exit(Reason)
//   exit {signal, Reason}               the process running it was killed with Reason
//   error {exception, Reason, Stack}    the function raised error(Reason)
//   error {erpc, timeout|noconnection|notsup|badarg|system_limit|...}  the call itself failed
//                                       (exception_info::code says which: errc::timeout,
//                                       errc::noconnection, ...)
class call_result {
  public:
    call_result() = default;
    explicit call_result(term value) : v_(std::move(value)) {}
    explicit call_result(exception_info e) : v_(std::move(e)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    const term& value() const;            // throws erlang_exception if !ok()
    const exception_info& error() const;  // throws std::logic_error if ok()
    // {ok, Value} or {Class, Reason}, as erpc:multicall lists results.
    term to_term() const;
    // Value or {badrpc, ...} exactly as rpc:call returns it.
    term to_rpc_term() const;

  private:
    std::variant<term, exception_info> v_;
};

namespace detail {
using call_handler = boost::asio::any_completion_handler<void(error_code, call_result)>;
using multicall_handler =
    boost::asio::any_completion_handler<void(error_code, std::vector<call_result>)>;
void initiate_call(erl::node& n, atom target, atom module, atom function, term args,
                   std::chrono::milliseconds timeout, call_handler handler);
void initiate_multicall(erl::node& n, std::vector<atom> targets, atom module, atom function,
                        term args, std::chrono::milliseconds timeout, multicall_handler handler);
}  // namespace detail

/// erpc:call(Node, M, F, Args, Timeout): blocks this thread (the blocking form of async_call;
/// not on a thread the node needs to make progress, such as its only I/O thread). Connects
/// first if needed. Every outcome is in the call_result: the value, the Erlang exception, or
/// error {erpc, timeout | noconnection | notsup | badarg} with exception_info::code
/// errc::timeout / errc::noconnection / {} / errc::type_mismatch (args not a list).
call_result call(erl::node& n, atom target, atom module, atom function, term args,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30));
call_result call(erl::node& n, atom target, std::string_view module, std::string_view function,
                 term args, std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// erpc:call as an asynchronous operation: completes with (error_code, call_result) on the
/// token's associated executor (the node's executor if it has none). The error_code is {}
/// whenever the call has an outcome (all of call()'s, including timeouts, are in the
/// call_result); it is boost::asio::error::operation_aborted when terminal or partial
/// cancellation is emitted on the token's cancellation slot (not total: the request has been
/// sent): the request is abandoned as on a timeout (its monitor removed, also when the
/// SPAWN_REPLY crosses the cancellation; a late result dropped; the function itself runs on).
/// It is errc::shutting_down when the node stops first (stop() returns after this completion
/// has run on the node's io_context; the call_result is error {erpc, noconnection} with code
/// shutting_down, as call() returns). Never blocks: a coroutine process may co_await it on
/// the node's only I/O thread.
///
///     auto [ec, r] = co_await erl::rpc::async_call(node, peer, erl::atom("erlang"),
///                                                  erl::atom("node"), erl::term(), 5s,
///                                                  boost::asio::as_tuple(use_awaitable));
template <class Token>
auto async_call(erl::node& n, atom target, atom module, atom function, term args,
                std::chrono::milliseconds timeout, Token&& token) {
    return erl::detail::async_op<void(error_code, call_result)>(token, &detail::initiate_call,
                                                                std::ref(n), target, module,
                                                                function, std::move(args), timeout);
}

/// erpc:cast: fire and forget. Errors only for a node that cannot be reached (noconnection),
/// or args that are not a list (type_mismatch).
error_code cast(erl::node& n, atom target, atom module, atom function, term args);

/// erpc:multicall: the calls run in parallel; results in the order of `targets`, each as
/// call() would return it (one deadline for all). Blocks this thread, as call().
std::vector<call_result> multicall(erl::node& n, const std::vector<atom>& targets, atom module,
                                   atom function, term args,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// erpc:multicall as an asynchronous operation: completes with (error_code,
/// std::vector<call_result>) as async_call does (on cancellation the vector is empty; on a
/// stop every call not finished fails as async_call's).
template <class Token>
auto async_multicall(erl::node& n, std::vector<atom> targets, atom module, atom function, term args,
                     std::chrono::milliseconds timeout, Token&& token) {
    return erl::detail::async_op<void(error_code, std::vector<call_result>)>(
        token, &detail::initiate_multicall, std::ref(n), std::move(targets), module, function,
        std::move(args), timeout);
}

// ---------------------------------------------------------------------------------------------
// Implementation of server::add.
namespace detail {

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<boost::asio::awaitable<T, E>> : std::true_type {
    using value_type = T;
};

template <class T>
term result_to_term(T&& v) {
    using D = std::decay_t<T>;
    if constexpr (std::is_same_v<D, term>)
        return std::forward<T>(v);
    else
        return to_term(v);
}

// Converts argument i or raises error:badarg (as a BIF does for a bad argument).
template <class A>
std::decay_t<A> arg_from(const term& t, const call_context& ctx);

[[noreturn]] void raise_badarg(const call_context& ctx);

template <class A>
std::decay_t<A> arg_from(const term& t, const call_context& ctx) {
    using D = std::decay_t<A>;
    if constexpr (std::is_same_v<D, term>) {
        return t;
    } else {
        auto r = from_term<D>(t);
        if (!r) raise_badarg(ctx);
        return std::move(*r);
    }
}

template <class R, class... A>
struct sig {
    using ret = R;
    using args = std::tuple<A...>;
};

template <class F>
struct callable_sig : callable_sig<decltype(&std::decay_t<F>::operator())> {};
template <class C, class R, class... A>
struct callable_sig<R (C::*)(A...) const> : sig<R, A...> {};
template <class C, class R, class... A>
struct callable_sig<R (C::*)(A...)> : sig<R, A...> {};
template <class C, class R, class... A>
struct callable_sig<R (C::*)(A...) const noexcept> : sig<R, A...> {};
template <class C, class R, class... A>
struct callable_sig<R (C::*)(A...) noexcept> : sig<R, A...> {};
template <class R, class... A>
struct callable_sig<R (*)(A...)> : sig<R, A...> {};
template <class R, class... A>
struct callable_sig<R (*)(A...) noexcept> : sig<R, A...> {};
template <class R, class... A>
struct callable_sig<R(A...)> : sig<R, A...> {};

template <class Tuple>
struct takes_context : std::false_type {};
template <class First, class... Rest>
struct takes_context<std::tuple<First, Rest...>>
    : std::is_same<std::remove_cvref_t<First>, call_context> {};

template <class Tuple>
struct drop_first;
template <>
struct drop_first<std::tuple<>> {
    using type = std::tuple<>;
};
template <class First, class... Rest>
struct drop_first<std::tuple<First, Rest...>> {
    using type = std::tuple<Rest...>;
};

// The C++ parameter types without a leading call_context&, decayed: what the arguments are
// converted to (and stored as, so references stay valid while a coroutine runs).
template <class Args>
struct value_args;
template <class... A>
struct value_args<std::tuple<A...>> {
    using all = std::tuple<std::decay_t<A>...>;
};

template <class Args, bool WithCtx>
using param_tuple =
    typename value_args<std::conditional_t<WithCtx, typename drop_first<Args>::type, Args>>::all;

template <class Tuple, std::size_t... I>
Tuple convert_args(std::span<const term> a, const call_context& ctx, std::index_sequence<I...>) {
    return Tuple(arg_from<std::tuple_element_t<I, Tuple>>(a[I], ctx)...);
}

// The typed handler of server::add (and of erl::module::registrar::add) as a raw one: arguments
// converted with from_term (a mismatch raises error:badarg), the result with to_term (void ->
// ok). Calls add_sync(arity, sync_handler) or, for a coroutine, add_async(arity, async_handler);
// `who` names the caller in the error for a coroutine asked to run on an I/O thread.
template <class F, class AddSync, class AddAsync>
void register_typed(F&& fn, function_options opts, const char* who, AddSync&& add_sync,
                    AddAsync&& add_async) {
    using S = callable_sig<std::decay_t<F>>;
    using Args = typename S::args;
    using R = typename S::ret;
    constexpr bool with_ctx = takes_context<Args>::value;
    using P = param_tuple<Args, with_ctx>;
    constexpr unsigned arity = static_cast<unsigned>(std::tuple_size_v<P>);
    using Seq = std::make_index_sequence<arity>;
    if constexpr (is_awaitable<R>::value) {
        using V = typename is_awaitable<R>::value_type;
        if (opts.run != run_on::pool)
            throw std::invalid_argument(std::string(who) + ": coroutine handlers run on the pool");
        add_async(arity, async_handler([fn = std::forward<F>(fn)](
                                           call_context& ctx,
                                           std::vector<term> a) -> boost::asio::awaitable<term> {
                      // Converted before the first suspension (a bad argument fails at once) and
                      // kept in this frame, so handlers may take their parameters by reference.
                      P conv = convert_args<P>(a, ctx, Seq{});
                      auto call = [&](auto&... xs) {
                          if constexpr (with_ctx)
                              return fn(ctx, xs...);
                          else
                              return fn(xs...);
                      };
                      if constexpr (std::is_void_v<V>) {
                          co_await std::apply(call, conv);
                          co_return term(atoms::ok());
                      } else {
                          co_return result_to_term(co_await std::apply(call, conv));
                      }
                  }));
    } else {
        add_sync(arity, sync_handler([fn = std::forward<F>(fn)](call_context& ctx,
                                                                std::span<const term> a) -> term {
                     P conv = convert_args<P>(a, ctx, Seq{});
                     auto call = [&](auto&... xs) -> decltype(auto) {
                         if constexpr (with_ctx)
                             return fn(ctx, xs...);
                         else
                             return fn(xs...);
                     };
                     if constexpr (std::is_void_v<R>) {
                         std::apply(call, conv);
                         return term(atoms::ok());
                     } else {
                         return result_to_term(std::apply(call, conv));
                     }
                 }));
    }
}

}  // namespace detail

template <class F>
void server::add(std::string_view module, std::string_view function, F&& fn,
                 function_options opts) {
    const atom m(module), f(function);
    detail::register_typed(
        std::forward<F>(fn), opts, "erl::rpc::server::add",
        [&](unsigned arity, sync_handler h) { add_raw(m, f, arity, std::move(h), opts); },
        [&](unsigned arity, async_handler h) { add_raw_async(m, f, arity, std::move(h)); });
}

}  // namespace erl::rpc
