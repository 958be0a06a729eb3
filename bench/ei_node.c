/* erlcpp-bench-ei-node: an erl_interface (libei) C node offering the same services as erlcpp-demo,
 * the "ei" baseline of scripts/bench-node.
 *
 *   erlcpp-bench-ei-node NAME@IP COOKIE        (EPMD port from ERL_EPMD_PORT, as libei reads it)
 *
 * Registered names (an ei node has no processes: messages to any registered name arrive on the
 * connection and are dispatched on msg.toname):
 *   echo  {Pid, T}      -> Pid ! T
 *   sink  any message   -> counted;  {done, Pid} -> Pid ! {count, N}, and the count resets
 * One thread per accepted connection; the sink count is per connection (a driver's messages and
 * its {done, Pid} travel on the same connection, in order). Prints "ready NAME" once published.
 * An ei node is always hidden (it never sets DFLAG_PUBLISHED); OTP 25 nodes still auto-connect
 * to it on the first send to {Name, Node}, it just does not appear in nodes().
 */
#include <ei.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ei_cnode g_ec;

struct conn_arg {
    int fd;
};

/* {done, Pid}: returns 1 and fills pid. */
static int is_done(const char* buf, erlang_pid* pid) {
    int idx = 0, ver = 0, arity = 0;
    char atom[MAXATOMLEN_UTF8];
    if (ei_decode_version(buf, &idx, &ver) < 0) return 0;
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 2) return 0;
    if (ei_decode_atom(buf, &idx, atom) < 0 || strcmp(atom, "done") != 0) return 0;
    return ei_decode_pid(buf, &idx, pid) == 0;
}

static void* serve(void* p) {
    int fd = ((struct conn_arg*)p)->fd;
    free(p);
    ei_x_buff in, out;
    ei_x_new(&in);
    ei_x_new(&out);
    long count = 0;
    for (;;) {
        erlang_msg msg;
        int r = ei_xreceive_msg(fd, &msg, &in);
        if (r == ERL_TICK) continue;
        if (r == ERL_ERROR) break;
        if (msg.msgtype != ERL_REG_SEND && msg.msgtype != ERL_REG_SEND_TT) continue;
        if (strcmp(msg.toname, "sink") == 0) {
            erlang_pid to;
            if (is_done(in.buff, &to)) {
                out.index = 0;
                ei_x_encode_version(&out);
                ei_x_encode_tuple_header(&out, 2);
                ei_x_encode_atom(&out, "count");
                ei_x_encode_long(&out, count);
                ei_send(fd, &to, out.buff, out.index);
                count = 0;
            } else {
                ++count;
            }
        } else if (strcmp(msg.toname, "echo") == 0) {
            int idx = 0, ver = 0, arity = 0;
            erlang_pid to;
            if (ei_decode_version(in.buff, &idx, &ver) < 0 ||
                ei_decode_tuple_header(in.buff, &idx, &arity) < 0 || arity != 2 ||
                ei_decode_pid(in.buff, &idx, &to) < 0)
                continue;
            int start = idx;
            if (ei_skip_term(in.buff, &idx) < 0) continue;
            /* The reply is the version byte followed by T's bytes as received. */
            out.index = 0;
            ei_x_encode_version(&out);
            ei_x_append_buf(&out, in.buff + start, idx - start);
            ei_send(fd, &to, out.buff, out.index);
        }
    }
    ei_x_free(&in);
    ei_x_free(&out);
    close(fd);
    return NULL;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME@IP COOKIE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const char* full = argv[1];
    const char* at = strchr(full, '@');
    if (!at) {
        fprintf(stderr, "node name must be NAME@IP\n");
        return 2;
    }
    char alive[256], host[256];
    snprintf(alive, sizeof alive, "%.*s", (int)(at - full), full);
    snprintf(host, sizeof host, "%s", at + 1);
    struct in_addr addr;
    if (inet_pton(AF_INET, host, &addr) != 1) addr.s_addr = htonl(INADDR_LOOPBACK);

    if (ei_init() != 0) {
        fprintf(stderr, "ei_init failed\n");
        return 1;
    }
    if (ei_connect_xinit(&g_ec, host, alive, full, (Erl_IpAddr)&addr, argv[2], 1) < 0) {
        fprintf(stderr, "ei_connect_xinit failed\n");
        return 1;
    }
    int port = 0;
    int lfd = ei_listen(&g_ec, &port, 16);
    if (lfd < 0) {
        fprintf(stderr, "ei_listen failed\n");
        return 1;
    }
    if (ei_publish(&g_ec, port) < 0) {
        fprintf(stderr, "ei_publish failed (is EPMD running on ERL_EPMD_PORT?)\n");
        return 1;
    }
    printf("ready %s\n", full);
    fflush(stdout);
    for (;;) {
        ErlConnect conp;
        int fd = ei_accept(&g_ec, lfd, &conp);
        if (fd < 0) { /* refused handshake (e.g. wrong cookie) */
            usleep(1000);
            continue;
        }
        struct conn_arg* a = malloc(sizeof *a);
        a->fd = fd;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, a) != 0) {
            close(fd);
            free(a);
            continue;
        }
        pthread_detach(t);
    }
}
