// The README's "A C++ node in a few lines", compiled: the README block is the region between
// the readme markers (cmake/readme-snippets.pl checks that they are equal).
// [readme:node]
#include <erl/node.hpp>

int main() {
    erl::node_options o;
    o.name = "cpp@127.0.0.1";
    o.cookie = "secret";
    erl::node node(o);
    if (auto ec = node.start()) return 1;  // listens, finds or starts epmd, registers

    auto mb = node.spawn_mailbox(erl::atom("echo"));  // {echo, 'cpp@127.0.0.1'} ! {self(), hi}
    while (auto m = mb->receive()) {
        if (m->is_tuple(2) && (*m)[0].is_pid()) mb->send((*m)[0].as_pid(), (*m)[1]);
    }
}
// [/readme:node]
