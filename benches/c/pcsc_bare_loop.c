/*
 * The bare C baseline for scripts/pcsc-bench.sh: N exchanges of one APDU through
 * libpcsclite, nothing else. Prints one line of figures for the Rust side to read:
 *
 *   c-loop n=<N> wall_median_ns=<ns> wall_mean_ns=<ns> cpu_ns_per_apdu=<ns> wire_exchanges=<n>
 *
 * CPU is getrusage(RUSAGE_SELF) user + system over the loop only, divided by N.
 *
 *   pcsc_bare_loop <reader substring> <select hex> <apdu hex> <N>
 *   PCSC_TRANSACTION=1 pcsc_bare_loop ...   the same inside SCardBeginTransaction
 */
#include <PCSC/winscard.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static size_t unhex(const char *s, unsigned char *out, size_t max) {
	size_t n = 0;
	while (s[0] && s[1] && n < max) {
		unsigned int b;
		if (sscanf(s, "%2x", &b) != 1)
			break;
		out[n++] = (unsigned char)b;
		s += 2;
	}
	return n;
}

static int64_t now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t cpu_ns(void) {
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return ((int64_t)u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000;
}

static int cmp(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void check(const char *what, LONG rv) {
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "%s: %s\n", what, pcsc_stringify_error(rv));
		exit(1);
	}
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: %s <reader substring> <select hex> <apdu hex> <N>\n", argv[0]);
		return 2;
	}
	long n = atol(argv[4]);
	unsigned char sel[300], apdu[300], resp[MAX_BUFFER_SIZE_EXTENDED];
	size_t sel_len = unhex(argv[2], sel, sizeof sel), apdu_len = unhex(argv[3], apdu, sizeof apdu);
	int64_t *wall = malloc(sizeof(int64_t) * (size_t)n);
	if (n <= 0 || !wall)
		return 2;

	SCARDCONTEXT ctx;
	check("SCardEstablishContext", SCardEstablishContext(SCARD_SCOPE_USER, NULL, NULL, &ctx));
	char readers[4096];
	DWORD len = sizeof readers;
	check("SCardListReaders", SCardListReaders(ctx, NULL, readers, &len));
	const char *reader = NULL;
	for (const char *r = readers; *r; r += strlen(r) + 1)
		if (strstr(r, argv[1])) {
			reader = r;
			break;
		}
	if (!reader) {
		fprintf(stderr, "no reader matches '%s'\n", argv[1]);
		return 1;
	}
	SCARDHANDLE card;
	DWORD proto;
	check("SCardConnect", SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card, &proto));
	const SCARD_IO_REQUEST *pci = proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
	DWORD rlen = sizeof resp;
	check("SCardTransmit (select)", SCardTransmit(card, pci, sel, sel_len, NULL, resp, &rlen));
	/* PCSC_TRANSACTION=1: hold a transaction over the loop, as `cardbench time` does. */
	const char *tx = getenv("PCSC_TRANSACTION");
	if (tx && strcmp(tx, "1") == 0)
		check("SCardBeginTransaction", SCardBeginTransaction(card));

	long wires = 0;
	int64_t cpu0 = cpu_ns(), t_all = now_ns();
	for (long i = 0; i < n; i++) {
		int64_t t = now_ns();
		rlen = sizeof resp;
		check("SCardTransmit", SCardTransmit(card, pci, apdu, apdu_len, NULL, resp, &rlen));
		wires++;
		if (rlen < 2) {
			fprintf(stderr, "short answer\n");
			return 1;
		}
		/* 61xx (alone from a T=0 card, or after part of the data): more bytes wait for a GET
		 * RESPONSE, which every client sends; cardbench's figure for the command holds it. */
		while (resp[rlen - 2] == 0x61) {
			unsigned char get[5] = {0x00, 0xC0, 0x00, 0x00, resp[rlen - 1]};
			rlen = sizeof resp;
			check("SCardTransmit (get response)", SCardTransmit(card, pci, get, sizeof get, NULL, resp, &rlen));
			wires++;
			if (rlen < 2) {
				fprintf(stderr, "short answer\n");
				return 1;
			}
		}
		wall[i] = now_ns() - t;
	}
	int64_t total = now_ns() - t_all, cpu = cpu_ns() - cpu0;
	qsort(wall, (size_t)n, sizeof *wall, cmp);
	printf("c-loop n=%ld wall_median_ns=%lld wall_mean_ns=%lld cpu_ns_per_apdu=%lld wire_exchanges=%ld\n", n,
	       (long long)wall[n / 2], (long long)(total / n), (long long)(cpu / n), wires);
	SCardDisconnect(card, SCARD_LEAVE_CARD);
	SCardReleaseContext(ctx);
	free(wall);
	return 0;
}
