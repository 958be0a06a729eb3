// erl::term heap blocks, constructors, raw builders and accessors.
#include "term_internal.hpp"

#include "common/buffer_pool.hpp"
#include "common/enum_names.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <type_traits>

namespace erl::detail {

namespace {

// ---------------------------------------------------------------------------------------------
// Small-block pool. Decoding builds many small blocks (2-tuples, short lists, pids) and frees
// them soon after; a per-thread free list per 16-byte size class makes that an unsynchronized
// pointer pop/push instead of a malloc/free pair. A block freed on another thread simply joins
// that thread's lists. Each list keeps at most pool_class_budget bytes of blocks (so small
// classes keep more blocks: a decoded map of 1,000 {Int, <<"v">>} values frees 2,000 blocks of
// 32-48 bytes), at most 2 MiB per thread (32 classes of 64 KiB);
// the rest goes back to operator delete. Disabled under sanitizers (so ASan still sees every
// use-after-free) and in builds configured with -DERLCPP_TERM_POOL=OFF (for A/B measurements).
#if defined(ERLCPP_TERM_POOL_DEFAULT)
#elif defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ERLCPP_TERM_POOL_DEFAULT false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define ERLCPP_TERM_POOL_DEFAULT false
#endif
#endif
#ifndef ERLCPP_TERM_POOL_DEFAULT
#define ERLCPP_TERM_POOL_DEFAULT true
#endif

constexpr std::size_t pool_granule = 16;
constexpr std::size_t pool_max_bytes = 512;  // also short strings as lists (16 B/element)
constexpr std::size_t pool_classes = pool_max_bytes / pool_granule;
constexpr std::size_t pool_class_budget = 64 * 1024;
constexpr std::uint32_t pool_cap(std::size_t c) noexcept {
    return static_cast<std::uint32_t>(pool_class_budget / ((c + 1) * pool_granule));
}

struct free_node {
    free_node* next;
};
// Plain data: usable at any point of thread exit, unlike an object with a destructor.
struct pool_state {
    free_node* head[pool_classes];
    std::uint32_t count[pool_classes];
    bool registered;
    bool dead;
};
constinit thread_local pool_state tl_pool{};

bool pool_enabled_now() noexcept {
    return ERLCPP_TERM_POOL_DEFAULT;
}
// Read on every block allocation and free, so a plain global rather than a function-local
// static (whose guard check showed up in decode profiles). Zero (off) until dynamic
// initialization has run; blocks made before that are sized like pool blocks (see
// block_alloc), so they may join a pool list when freed later.
const bool g_pool_on = pool_enabled_now();
inline bool pool_enabled() noexcept {
    return g_pool_on;
}

// Returns the thread's cached blocks to the system when the thread ends.
struct pool_cleanup {
    ~pool_cleanup() {
        for (std::size_t c = 0; c < pool_classes; ++c) {
            while (free_node* n = tl_pool.head[c]) {
                tl_pool.head[c] = n->next;
                ::operator delete(n);
            }
            tl_pool.count[c] = 0;
        }
        tl_pool.dead = true;
    }
};

inline std::size_t pool_class(std::size_t bytes) noexcept {
    return (bytes + pool_granule - 1) / pool_granule - 1;
}

// Bytes of the binaries too large for the pool (erlang:memory(binary)): counted where such a
// block is allocated and freed, never on the pool's paths, so small terms cost nothing.
constinit std::atomic<std::int64_t> g_large_binary_bytes{0};

[[gnu::noinline]] void* large_alloc(std::size_t bytes, bool binary) {
    void* mem = ::operator new(bytes);
    if (binary)
        g_large_binary_bytes.fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
    return mem;
}

[[gnu::noinline]] void large_free(void* mem, std::size_t bytes) noexcept {
    const auto k = static_cast<const heap_header*>(mem)->kind;
    if (k == kind::binary || k == kind::bitstring)
        g_large_binary_bytes.fetch_sub(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
    ::operator delete(mem);
}

inline void* block_alloc(std::size_t bytes, bool binary = false) {
    if (bytes <= pool_max_bytes) {
        const std::size_t c = pool_class(bytes);
        if (pool_enabled()) {
            if (free_node* n = tl_pool.head[c]) {
                tl_pool.head[c] = n->next;
                --tl_pool.count[c];
                return n;
            }
        }
        // Always the full class size, so that any small block may later join a pool list.
        return ::operator new((c + 1) * pool_granule);
    }
    return large_alloc(bytes, binary);
}

inline void block_free(void* mem, std::size_t bytes) noexcept {
    if (bytes > pool_max_bytes) return large_free(mem, bytes);  // a constructed block
    if (pool_enabled() && !tl_pool.dead) {
        const std::size_t c = pool_class(bytes);
        if (tl_pool.count[c] < pool_cap(c)) {
            if (!tl_pool.registered) {
                tl_pool.registered = true;
                static thread_local pool_cleanup cleanup;
                (void)cleanup;
            }
            auto* n = static_cast<free_node*>(mem);
            n->next = tl_pool.head[c];
            tl_pool.head[c] = n;
            ++tl_pool.count[c];
            return;
        }
    }
    ::operator delete(mem);
}

}  // namespace

// Allocation size of a block, from its header (must match what alloc_block/make_value asked).
std::size_t block_bytes(const heap_header* h) noexcept {
    switch (h->kind) {
        case kind::tuple:
            return sizeof(tuple_block) + h->size * sizeof(term);
        case kind::list:
            return sizeof(list_block) + h->size * sizeof(term);
        case kind::map:
            return sizeof(map_block) + h->size * sizeof(std::pair<term, term>);
        case kind::binary:
            if (h->flags == binary_shared) return sizeof(binary_block) + sizeof(shared_bytes);
            return sizeof(binary_block) + h->size;
        case kind::bitstring:
            return sizeof(binary_block) + h->size;
        case kind::bignum:
            return sizeof(bignum_block) + h->size * sizeof(std::uint32_t);
        case kind::pid:
            return sizeof(value_block<pid>);
        case kind::port:
            return sizeof(value_block<port>);
        case kind::reference:
            return sizeof(value_block<reference>);
        case kind::fun:
            return h->flags == 1 ? sizeof(value_block<export_fun>) : sizeof(value_block<closure>);
        default:
            return pool_max_bytes + 1;  // never pooled
    }
}

namespace {
// A buffer the runtime made (a received frame) that binaries now refer to: its bytes count as
// binary memory for as long as it lives.
struct adopted_buffer {
    explicit adopted_buffer(std::vector<std::uint8_t>&& v) noexcept : bytes(std::move(v)) {
        g_large_binary_bytes.fetch_add(static_cast<std::int64_t>(bytes.capacity()),
                                       std::memory_order_relaxed);
    }
    ~adopted_buffer() {
        g_large_binary_bytes.fetch_sub(static_cast<std::int64_t>(bytes.capacity()),
                                       std::memory_order_relaxed);
        buffer_pool::give(std::move(bytes));  // the next large message may reuse its pages
    }
    adopted_buffer(const adopted_buffer&) = delete;
    adopted_buffer& operator=(const adopted_buffer&) = delete;
    std::vector<std::uint8_t> bytes;
};
}  // namespace

std::shared_ptr<const std::vector<std::uint8_t>> adopt_buffer(std::vector<std::uint8_t>&& v) {
    auto b = std::make_shared<adopted_buffer>(std::move(v));
    return {b, &b->bytes};
}

std::size_t large_binary_bytes() noexcept {
    return static_cast<std::size_t>(
        std::max<std::int64_t>(g_large_binary_bytes.load(std::memory_order_relaxed), 0));
}

namespace {

// One allocation per block: header followed by the trailing array (term_heap.hpp layout).
template <class Block, class Elem>
Block* alloc_block(kind k, std::size_t n) {
    constexpr std::size_t max_n = (std::numeric_limits<std::size_t>::max() - sizeof(Block)) /
                                  (sizeof(Elem) ? sizeof(Elem) : 1);
    if (n > max_n) throw std::bad_alloc();
    void* mem = block_alloc(sizeof(Block) + n * sizeof(Elem), std::is_same_v<Block, binary_block>);
    Block* b = ::new (mem) Block();
    b->h.kind = k;
    b->h.size = n;
    return b;
}

template <class T>
term make_value(kind k, std::uint8_t flags, const T& v) {
    void* mem = block_alloc(sizeof(value_block<T>));
    value_block<T>* b;
    try {
        b = ::new (mem) value_block<T>{heap_header{}, v};
    } catch (...) {
        block_free(mem, sizeof(value_block<T>));
        throw;
    }
    b->h.kind = k;
    b->h.flags = flags;
    return term::from_heap(k, &b->h);
}

// Work list for destroy(): a small inline stack that spills to the heap, so freeing a
// 1,000,000-deep term neither recurses nor allocates in the common case.
struct pending;
void free_block(heap_header* h, pending& work, bool nested = false) noexcept;

struct pending {
    heap_header* inline_[64];
    std::size_t n = 0;
    std::vector<heap_header*> spill;

    void push(heap_header* h) noexcept {
        if (n < 64)
            inline_[n++] = h;
        else
            push_spill(h);
    }
    [[gnu::noinline]] void push_spill(heap_header* h) noexcept {
        try {
            spill.push_back(h);
        } catch (...) {
            free_block(h, *this);  // out of memory for the work list: recurse instead
        }
    }
    heap_header* pop() noexcept {
        if (!spill.empty()) {
            heap_header* h = spill.back();
            spill.pop_back();
            return h;
        }
        return n ? inline_[--n] : nullptr;
    }
};

// Kinds whose terms own a heap block (the complement of term::is_heap's immediates), as a
// bit mask so the destroy loops test each child with one instruction.
constexpr std::uint32_t heap_kind_mask =
    ~((1u << static_cast<unsigned>(kind::integer)) | (1u << static_cast<unsigned>(kind::float_)) |
      (1u << static_cast<unsigned>(kind::atom)) | (1u << static_cast<unsigned>(kind::nil)));

// Blocks whose payload holds no terms: freeing one never leads to another block.
inline bool is_leaf_block(const heap_header* h) noexcept {
    switch (h->kind) {
        case kind::tuple:
        case kind::list:
        case kind::map:
            return false;
        case kind::fun:
            return h->flags == 1;  // export: atoms only; closure: pid and free variables
        default:
            return true;
    }
}

// What a leaf block holds besides bytes: the atoms of a pid, port, reference or export (only
// network atoms need anything), and the owner of a shared binary's bytes.
inline void drop_leaf_atoms(heap_header* h) noexcept {
    switch (h->kind) {
        case kind::binary:
            if (h->flags == binary_shared)
                reinterpret_cast<binary_block*>(h)->shared_part()->~shared_bytes();
            break;
        case kind::pid:
            reinterpret_cast<value_block<pid>*>(h)->value.node.~atom();
            break;
        case kind::port:
            reinterpret_cast<value_block<port>*>(h)->value.node.~atom();
            break;
        case kind::reference:
            reinterpret_cast<value_block<reference>*>(h)->value.node.~atom();
            break;
        case kind::fun:
            if (h->flags == 1) {
                auto& f = reinterpret_cast<value_block<export_fun>*>(h)->value;
                f.module.~atom();
                f.function.~atom();
            }
            break;
        default:
            break;
    }
}

// Drops one reference held by a child term of a dying block. A child whose count reaches
// zero is freed at once if it holds no terms, or if its parent was taken from the work list
// (`nested` false: at most one level of direct recursion); otherwise it is queued. Wide
// containers of small containers (a map of tuples) then never queue their children.
[[gnu::always_inline]] inline void drop(const term& t, pending& work, bool nested) noexcept {
    if (!((1u << static_cast<unsigned>(t.type())) & heap_kind_mask)) {
        if (t.type() == kind::atom && (t.atom_bits() & 1)) atom_unref(t.atom_bits());
        return;
    }
    heap_header* h = t.heap();
    // Sole owner: nobody else can touch the count, so skip the atomic RMW.
    if (h->refs.load(std::memory_order_acquire) == 1 ||
        h->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        if (is_leaf_block(h)) {
            drop_leaf_atoms(h);
            block_free(h, block_bytes(h));
        } else if (!nested)
            free_block(h, work, true);
        else
            work.push(h);
    }
}

// Neutralizes a term in place without touching its block (used where a destructor will
// still run over the storage, e.g. closure::free_vars).
inline void disown(term& t) noexcept {
    ::new (&t) term();
}

void free_block(heap_header* h, pending& work, bool nested) noexcept {
    switch (h->kind) {
        case kind::tuple: {
            auto* b = reinterpret_cast<tuple_block*>(h);
            term* e = b->elems();
            for (std::size_t i = 0; i < h->size; ++i)
                drop(e[i], work, nested);
            break;
        }
        case kind::list: {
            auto* b = reinterpret_cast<list_block*>(h);
            term* e = b->elems();
            if (h->flags != elems_immediate)
                for (std::size_t i = 0; i < h->size; ++i)
                    drop(e[i], work, nested);
            drop(b->tail, work, nested);
            break;
        }
        case kind::map: {
            auto* b = reinterpret_cast<map_block*>(h);
            auto* p = b->pairs();
            for (std::size_t i = 0; i < h->size; ++i) {
                drop(p[i].first, work, nested);
                drop(p[i].second, work, nested);
            }
            break;
        }
        case kind::fun:
            if (h->flags == 0) {
                auto* b = reinterpret_cast<value_block<closure>*>(h);
                drop(b->value.pid, work, nested);
                disown(b->value.pid);
                for (term& t : b->value.free_vars) {
                    drop(t, work, nested);
                    disown(t);
                }
                b->value.~closure();
            }
            break;
        default:  // bytes, limbs, pid/port/reference/export: atoms at most
            break;
    }
    drop_leaf_atoms(h);
    block_free(h, block_bytes(h));
}

}  // namespace

void destroy(heap_header* h) noexcept {
    pending work;
    do {
        free_block(h, work);
    } while ((h = work.pop()));
}

namespace {
// Every element starts as [] (term() is noexcept, so no rollback bookkeeping is needed).
inline void fill_nil(term* e, std::size_t n) noexcept {
    for (term* end = e + n; e != end; ++e)
        ::new (static_cast<void*>(e)) term();
}
}  // namespace

term new_tuple(std::size_t n, term*& elems) {
    auto* b = alloc_block<tuple_block, term>(kind::tuple, n);
    elems = b->elems();
    fill_nil(elems, n);
    return term::from_heap(kind::tuple, &b->h);
}

term new_list_raw(std::size_t n, term*& elems, term*& tail) {
    if (n == 0) throw std::invalid_argument("erl::detail::new_list: n must be >= 1");
    auto* b = alloc_block<list_block, term>(kind::list, n);
    elems = b->elems();
    tail = &b->tail;
    b->h.flags = elems_immediate;
    return term::from_heap(kind::list, &b->h);
}

term new_list(std::size_t n, term*& elems, term*& tail) {
    term t = new_list_raw(n, elems, tail);
    fill_nil(elems, n);
    t.heap()->flags = 0;  // the caller may store any term in the elements
    return t;
}

term new_map(std::size_t n, std::pair<term, term>*& pairs) {
    auto* b = alloc_block<map_block, std::pair<term, term>>(kind::map, n);
    pairs = b->pairs();
    for (std::size_t i = 0; i < n; ++i)
        ::new (static_cast<void*>(pairs + i)) std::pair<term, term>();
    return term::from_heap(kind::map, &b->h);
}

namespace {

// Class of a kind in the standard term order (order.cpp's rank): number < atom < reference <
// fun < port < pid < tuple < map < [] < list < bitstring.
constexpr std::uint8_t order_class[] = {
    0,   // integer
    0,   // bignum
    0,   // float_
    1,   // atom
    2,   // reference
    3,   // fun
    4,   // port
    5,   // pid
    6,   // tuple
    7,   // map
    8,   // nil
    9,   // list
    10,  // binary
    10,  // bitstring
};
static_assert(sizeof(order_class) == static_cast<std::size_t>(kind::bitstring) + 1);

// compare_exact for map keys, with the common key shapes decided inline: keys of different
// classes, two atoms, two small integers and two binaries (whole bytes). Everything else goes
// to compare_exact, so the order is exactly the one as_map() documents.
inline int key_compare(const term& a, const term& b) noexcept {
    const kind ka = a.type(), kb = b.type();
    const unsigned ca = order_class[static_cast<unsigned>(ka)];
    const unsigned cb = order_class[static_cast<unsigned>(kb)];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (ka == kb) {
        if (ka == kind::atom) {
            const atom_entry* x = a.atom_ptr();
            const atom_entry* y = b.atom_ptr();
            if (x == y) return 0;
            // Distinct atoms usually differ in the first byte (texts are NUL-terminated).
            auto x0 = static_cast<unsigned char>(x->text[0]);
            auto y0 = static_cast<unsigned char>(y->text[0]);
            if (x0 != y0 && x->bytes && y->bytes) return x0 < y0 ? -1 : 1;
            std::size_t n = x->bytes < y->bytes ? x->bytes : y->bytes;
            int c = n ? std::memcmp(x->text, y->text, n) : 0;
            if (c) return c < 0 ? -1 : 1;
            return (x->bytes > y->bytes) - (x->bytes < y->bytes);
        }
        if (ka == kind::integer) {
            std::int64_t x = a.as_int64(), y = b.as_int64();
            return (x > y) - (x < y);
        }
        if (ka == kind::binary) {
            auto* x = reinterpret_cast<binary_block*>(a.heap());
            auto* y = reinterpret_cast<binary_block*>(b.heap());
            std::size_t nx = x->h.size, ny = y->h.size;
            std::size_t n = nx < ny ? nx : ny;
            int c = n ? std::memcmp(x->data(), y->data(), n) : 0;
            if (c) return c < 0 ? -1 : 1;
            return (nx > ny) - (nx < ny);
        }
    }
    return compare_exact(a, b);
}

}  // namespace

error_code finish_map(term& m) noexcept {
    if (m.type() != kind::map) return make_error_code(errc::invalid_term);
    auto* b = reinterpret_cast<map_block*>(m.heap());
    auto* p = b->pairs();
    std::size_t n = b->h.size;
    auto less = [](const std::pair<term, term>& x, const std::pair<term, term>& y) noexcept {
        return key_compare(x.first, y.first) < 0;
    };
    // Usually already sorted (our encoder and OTP for maps of <= 32 keys send key order).
    bool sorted = true;
    for (std::size_t i = 1; i < n; ++i) {
        int c = key_compare(p[i - 1].first, p[i].first);
        if (c == 0) return make_error_code(errc::duplicate_map_key);
        if (c > 0) {
            sorted = false;
            break;
        }
    }
    if (sorted) return {};
    std::sort(p, p + n, less);
    for (std::size_t i = 1; i < n; ++i)
        if (key_compare(p[i - 1].first, p[i].first) == 0)
            return make_error_code(errc::duplicate_map_key);
    return {};
}

term new_binary(std::size_t bytes, std::uint8_t*& data, unsigned trailing_bits) {
    if (trailing_bits == 0 || trailing_bits > 8 || bytes == 0) trailing_bits = 8;
    kind k = trailing_bits == 8 ? kind::binary : kind::bitstring;
    auto* b = alloc_block<binary_block, std::uint8_t>(k, bytes);
    b->h.flags = static_cast<std::uint8_t>(trailing_bits);
    data = b->data();  // not zero-filled: every caller writes all bytes (1 MB memset saved)
    return term::from_heap(k, &b->h);
}

term new_shared_binary(std::span<const std::uint8_t> bytes, std::shared_ptr<const void> owner) {
    void* mem = block_alloc(sizeof(binary_block) + sizeof(shared_bytes));
    auto* b = ::new (mem) binary_block();
    b->h.kind = kind::binary;
    b->h.size = bytes.size();
    b->h.flags = binary_shared;
    ::new (static_cast<void*>(b->shared_part())) shared_bytes{bytes.data(), std::move(owner)};
    return term::from_heap(kind::binary, &b->h);
}

term new_bignum(bool negative, std::size_t limbs, std::uint32_t*& data) {
    auto* b = alloc_block<bignum_block, std::uint32_t>(kind::bignum, limbs);
    b->h.flags = negative ? 1 : 0;
    data = b->limbs();
    if (limbs) std::memset(data, 0, limbs * sizeof(std::uint32_t));
    return term::from_heap(kind::bignum, &b->h);
}

term normalize_integer(term t) {
    if (t.type() != kind::bignum) return t;
    auto* b = reinterpret_cast<bignum_block*>(t.heap());
    std::size_t n = b->h.size;
    const std::uint32_t* l = b->limbs();
    while (n > 0 && l[n - 1] == 0)
        --n;
    bool neg = b->h.flags != 0;
    if (n <= 2) {
        std::uint64_t v = n == 0 ? 0 : (n == 1 ? l[0] : (l[0] | (std::uint64_t(l[1]) << 32)));
        if (!neg && v <= std::uint64_t(INT64_MAX)) return term(static_cast<long long>(v));
        if (neg && v <= std::uint64_t(INT64_MAX) + 1)
            return term(static_cast<long long>(0 - v));  // two's complement wrap is exact
    }
    if (n != b->h.size) {
        if (t.heap()->refs.load(std::memory_order_acquire) == 1) {
            b->h.size = n;  // unshared: shrink in place (limbs are trivially destructible)
        } else {
            std::uint32_t* d;
            term c = new_bignum(neg, n, d);
            std::memcpy(d, l, n * sizeof(std::uint32_t));
            return c;
        }
    }
    return t;
}

}  // namespace erl::detail

namespace erl {

namespace {
// Indexed by kind.
constexpr const char* kind_names[] = {"integer", "bignum", "float",  "atom",     "reference",
                                      "fun",     "port",   "pid",    "tuple",    "map",
                                      "[]",      "list",   "binary", "bitstring"};
static_assert(detail::names_each(kind_names, kind::integer, kind::bitstring));

// A reference carries at most 5 id words.
reference clamped(reference r) noexcept {
    if (r.len > 5) r.len = 5;
    return r;
}
}  // namespace

[[noreturn]] void throw_bad_term_access(const char* wanted, const term& got) {
    std::string msg = "erl::bad_term_access: expected ";
    msg += wanted;
    msg += ", got ";
    msg += detail::enum_name(got.type(), kind_names, "?");
    msg += ' ';
    print_options o;
    o.max_depth = 4;
    std::string s = to_string(got, o);
    if (s.size() > 200) {
        s.resize(200);
        s += "...";
    }
    msg += s;
    throw bad_term_access(msg);
}

// --- constructors -------------------------------------------------------------------------

term::term(unsigned long v) : term(static_cast<unsigned long long>(v)) {}

term::term(unsigned long long v) {
    if (v <= static_cast<unsigned long long>(INT64_MAX)) {
        kind_ = kind::integer;
        i_ = static_cast<std::int64_t>(v);
        return;
    }
    kind_ = kind::nil;
    i_ = 0;
    std::uint32_t* d;
    term b = detail::new_bignum(false, 2, d);
    d[0] = static_cast<std::uint32_t>(v);
    d[1] = static_cast<std::uint32_t>(v >> 32);
    swap(b);
}

term::term(double v) {
    if (!std::isfinite(v))
        throw std::domain_error("erl::term: NaN and infinity are not Erlang floats");
    kind_ = kind::float_;
    f_ = v;
}

term::term(bool v) noexcept : kind_(kind::atom) {
    a_ = reinterpret_cast<std::uintptr_t>((v ? atoms::true_() : atoms::false_()).entry());
}

term::term(const pid& p) : term(detail::make_value(kind::pid, 0, p)) {}
term::term(const port& p) : term(detail::make_value(kind::port, 0, p)) {}
term::term(const reference& r) : term(detail::make_value(kind::reference, 0, clamped(r))) {}
term::term(const export_fun& f) : term(detail::make_value(kind::fun, 1, f)) {}
term::term(const closure& f) : term(detail::make_value(kind::fun, 0, f)) {}

bool operator==(const reference& a, const reference& b) noexcept {
    if (a.node != b.node || a.creation != b.creation || a.len != b.len) return false;
    for (std::size_t i = 0; i < a.len && i < 5; ++i)
        if (a.ids[i] != b.ids[i]) return false;
    return true;
}

// --- inspection ---------------------------------------------------------------------------

bool term::is_bool() const noexcept {
    return kind_ == kind::atom &&
           (atom_ptr() == atoms::true_().entry() || atom_ptr() == atoms::false_().entry());
}

bool term::is_proper_list() const noexcept {
    if (kind_ == kind::nil) return true;
    if (kind_ != kind::list) return false;
    const term* t = this;
    while (t->kind_ == kind::list)
        t = &reinterpret_cast<detail::list_block*>(t->h_)->tail;
    return t->kind_ == kind::nil;
}

bool term::as_bool() const {
    if (kind_ == kind::atom) {
        if (atom_ptr() == atoms::true_().entry()) return true;
        if (atom_ptr() == atoms::false_().entry()) return false;
    }
    throw_bad_term_access("boolean", *this);
}

std::size_t term::bit_size() const {
    if (kind_ == kind::binary) return h_->size * 8;
    if (kind_ == kind::bitstring) return (h_->size - 1) * 8 + h_->flags;
    throw_bad_term_access("bitstring", *this);
}

unsigned term::trailing_bits() const {
    if (kind_ == kind::binary) return 8;
    if (kind_ == kind::bitstring) return h_->flags;
    throw_bad_term_access("bitstring", *this);
}

std::size_t term::size() const noexcept {
    switch (kind_) {
        case kind::tuple:
        case kind::map:
        case kind::binary:
        case kind::bitstring:
            return h_->size;
        case kind::list: {
            std::size_t n = 0;
            const term* t = this;
            while (t->kind_ == kind::list) {
                n += t->h_->size;
                t = &reinterpret_cast<detail::list_block*>(t->h_)->tail;
            }
            return n;
        }
        default:
            return 0;
    }
}

const term& term::operator[](std::size_t i) const {
    if (kind_ != kind::tuple) throw_bad_term_access("tuple", *this);
    if (i >= h_->size) throw bad_term_access("erl::term: tuple index out of range");
    return reinterpret_cast<detail::tuple_block*>(h_)->elems()[i];
}

const term* term::find(const term& key) const noexcept {
    if (kind_ != kind::map) return nullptr;
    auto* b = reinterpret_cast<detail::map_block*>(h_);
    const auto* p = b->pairs();
    std::size_t n = b->h.size;
    if (n <= 8) {
        for (std::size_t i = 0; i < n; ++i)
            if (p[i].first == key) return &p[i].second;
        return nullptr;
    }
    std::size_t lo = 0, hi = n;
    while (lo < hi) {
        std::size_t mid = lo + (hi - lo) / 2;
        int c = detail::compare_exact(p[mid].first, key);
        if (c == 0) return &p[mid].second;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return nullptr;
}

std::string term::to_string() const {
    return erl::to_string(*this);
}

// --- builders -----------------------------------------------------------------------------

term make_tuple(std::vector<term> elements) {
    term* e;
    term t = detail::new_tuple(elements.size(), e);
    std::move(elements.begin(), elements.end(), e);
    return t;
}

term make_list(std::vector<term> elements, term tail) {
    if (elements.empty()) return tail;
    std::size_t n = elements.size();
    std::size_t extra = 0;
    // Keep the invariant that a list's tail is never a non-empty list: append the tail's
    // elements so as_list() shows the whole list.
    if (tail.type() == kind::list) extra = tail.size();
    term *e, *t;
    term l = detail::new_list(n + extra, e, t);
    std::move(elements.begin(), elements.end(), e);
    if (extra) {
        detail::list_cursor c(tail);
        std::size_t i = n;
        while (const term* x = c.next())
            e[i++] = *x;
        *t = c.final_tail();
    } else {
        *t = std::move(tail);
    }
    return l;
}

term make_map(std::vector<std::pair<term, term>> pairs) {
    std::stable_sort(pairs.begin(), pairs.end(), [](const auto& x, const auto& y) noexcept {
        return detail::compare_exact(x.first, y.first) < 0;
    });
    // Last one wins among equal keys: keep the last of each run.
    std::size_t out = 0;
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        if (i + 1 < pairs.size() && detail::compare_exact(pairs[i].first, pairs[i + 1].first) == 0)
            continue;
        if (out != i) pairs[out] = std::move(pairs[i]);
        ++out;
    }
    std::pair<term, term>* p;
    term m = detail::new_map(out, p);
    std::move(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(out), p);
    return m;
}

term map(std::initializer_list<std::pair<term, term>> pairs) {
    return make_map(std::vector<std::pair<term, term>>(pairs));
}

term binary(std::string_view bytes) {
    std::uint8_t* d;
    term t = detail::new_binary(bytes.size(), d);
    if (!bytes.empty()) std::memcpy(d, bytes.data(), bytes.size());
    return t;
}

term binary(std::span<const std::uint8_t> bytes) {
    std::uint8_t* d;
    term t = detail::new_binary(bytes.size(), d);
    if (!bytes.empty()) std::memcpy(d, bytes.data(), bytes.size());
    return t;
}

term shared_binary(std::shared_ptr<const void> owner, std::span<const std::uint8_t> bytes) {
    return detail::new_shared_binary(bytes, std::move(owner));
}

term bitstring(std::span<const std::uint8_t> bytes, std::size_t bits) {
    std::size_t n = (bits + 7) / 8;
    if (bytes.size() < n) throw std::invalid_argument("erl::bitstring: not enough bytes for bits");
    unsigned tb = bits % 8 == 0 ? 8 : static_cast<unsigned>(bits % 8);
    std::uint8_t* d;
    term t = detail::new_binary(n, d, tb);
    if (n) {
        std::memcpy(d, bytes.data(), n);
        if (tb != 8) d[n - 1] &= static_cast<std::uint8_t>(0xFF << (8 - tb));  // unused bits = 0
    }
    return t;
}

term charlist(std::string_view utf8) {
    std::vector<term> cps;
    cps.reserve(utf8.size());
    std::size_t i = 0;
    while (i < utf8.size()) {
        std::uint32_t cp;
        if (!detail::utf8_decode(utf8, i, cp))
            throw std::invalid_argument("erl::charlist: invalid UTF-8");
        cps.emplace_back(static_cast<long long>(cp));
    }
    return make_list(std::move(cps));
}

term make_integer(bool negative, std::span<const std::uint32_t> limbs) {
    std::uint32_t* d;
    term t = detail::new_bignum(negative, limbs.size(), d);
    if (!limbs.empty()) std::memcpy(d, limbs.data(), limbs.size() * sizeof(std::uint32_t));
    return detail::normalize_integer(std::move(t));
}

}  // namespace erl
