// verifier-budget OBJ [PERCENT]: loads every program of the BPF object OBJ into this kernel with
// the verifier's statistics (log level 4) and prints, per program, the instructions the verifier
// processed against its limit (1,000,000). Exits 1 when a program does not load or uses more than
// PERCENT of the limit (default 75), so a change that eats the headroom fails here, on each kernel
// it runs on, with the numbers, before an attach fails on it (docs/datapath.md, "Verifier
// budget"). Maps are created, never pinned; nothing stays loaded.
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT 1000000L
#define MAX_PROGS 64
#define LOG_SIZE 4096

static char logs[MAX_PROGS][LOG_SIZE];

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: verifier-budget OBJ [PERCENT]\n");
		return 2;
	}
	long percent = argc > 2 ? strtol(argv[2], NULL, 10) : 75;
	libbpf_set_print(NULL);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "verifier-budget: cannot open %s\n", argv[1]);
		return 1;
	}
	struct bpf_map *map;
	bpf_object__for_each_map(map, obj) bpf_map__set_pin_path(map, NULL);
	struct bpf_program *prog;
	int n = 0;
	bpf_object__for_each_program(prog, obj) {
		if (n == MAX_PROGS)
			break;
		bpf_program__set_log_level(prog, 4);
		bpf_program__set_log_buf(prog, logs[n], LOG_SIZE);
		n++;
	}
	int err = bpf_object__load(obj);
	int bad = err != 0, i = 0;
	bpf_object__for_each_program(prog, obj) {
		if (i == MAX_PROGS)
			break;
		const char *s = strstr(logs[i++], "processed ");
		long insns = s ? strtol(s + strlen("processed "), NULL, 10) : -1;
		int over = insns < 0 || insns * 100 > LIMIT * percent;
		printf("%-20s %8ld of %ld instructions (%ld%%)%s\n", bpf_program__name(prog), insns, LIMIT,
		       insns < 0 ? 0 : insns * 100 / LIMIT, over ? (insns < 0 ? "  NOT LOADED" : "  OVER BUDGET") : "");
		bad |= over;
	}
	if (err)
		printf("load failed: %s\n", strerror(-err));
	bpf_object__close(obj);
	return bad;
}
