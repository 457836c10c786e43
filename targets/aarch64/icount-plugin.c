// A qemu TCG plugin (plugin API v1, qemu 7.2 and later) that counts the guest instructions a
// program executes, in total and per symbol (the symbol of each translation block's first
// instruction: inlined code counts under its caller). Writes "total N" and then "N symbol" lines,
// largest first, to the file named by out=PATH (default: qemu's log, stderr).
//   gcc -O2 -shared -fPIC -o icount-plugin.so icount-plugin.c
//   qemu-aarch64 -plugin ./icount-plugin.so,out=counts.txt PROGRAM ...
// qemu-plugin.h is not installed by Debian's qemu-user, so the few declarations used are here,
// as qemu's include/qemu/qemu-plugin.h has them since API version 1.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name;
    struct { int min, cur; } version;
    _Bool system_emulation;
    union { struct { int smp_vcpus, max_vcpus; } system; };
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

// One counter per symbol; a translation block's user data is (its symbol's slot, its length).
#define MAX_SYMS 65536
static struct { const char *name; uint64_t insns; } syms[MAX_SYMS];
static unsigned n_syms;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *out_path;

static unsigned slot_of(const char *name) {
    // Symbol names are qemu's own strings, stable for the run: compare pointers, then text.
    for (unsigned i = 0; i < n_syms; i++)
        if (syms[i].name == name || (name && syms[i].name && !strcmp(syms[i].name, name))) return i;
    if (n_syms == MAX_SYMS) return MAX_SYMS - 1;  // overflow shares the last slot
    syms[n_syms].name = name;
    return n_syms++;
}

static void on_exec(unsigned int vcpu, void *udata) {
    (void)vcpu;
    uintptr_t d = (uintptr_t)udata;
    __atomic_fetch_add(&syms[d >> 32].insns, d & 0xffffffffu, __ATOMIC_RELAXED);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    const char *name = n ? qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0)) : NULL;
    pthread_mutex_lock(&lock);
    uintptr_t slot = slot_of(name);
    pthread_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(slot << 32 | n));
}

static int by_count(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void at_exit(qemu_plugin_id_t id, void *p) {
    (void)id, (void)p;
    // Sort (count, slot) pairs; names are printed as qemu knows them (mangled).
    uint64_t(*order)[2] = calloc(n_syms ? n_syms : 1, sizeof *order), total = 0;
    for (unsigned i = 0; i < n_syms; i++) order[i][0] = syms[i].insns, order[i][1] = i, total += syms[i].insns;
    qsort(order, n_syms, sizeof *order, by_count);
    FILE *f = out_path ? fopen(out_path, "w") : NULL;
    char line[1024];
    snprintf(line, sizeof line, "total %llu\n", (unsigned long long)total);
    f ? (void)fputs(line, f) : qemu_plugin_outs(line);
    for (unsigned i = 0; i < n_syms && order[i][0]; i++) {
        const char *name = syms[order[i][1]].name;
        snprintf(line, sizeof line, "%llu %s\n", (unsigned long long)order[i][0], name ? name : "?");
        f ? (void)fputs(line, f) : qemu_plugin_outs(line);
    }
    if (f) fclose(f);
    free(order);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "out=", 4)) out_path = argv[i] + 4;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
