/* files floor: plain open/read(2) and write(2) in 64 KiB chunks.
 *
 *   usage: files-floor IN OUT [BYTES]
 *   prints: bytes=N read_s=R write_s=W sum=S chunk=65536 clock=monotonic
 *
 * The least a program can pay to read a file the page cache holds and to
 * write one into the page cache, 64 KiB per system call, with no event loop
 * and no thread hand-off.
 *
 * 1. read phase (timed): open IN, read(2) it to the end into one reused
 *    64 KiB buffer, adding the check sum of every chunk (see gen.c), close.
 * 2. load (not timed): read IN again into memory, so that the write phase
 *    has the file's bytes to write back.
 * 3. write phase (timed): open OUT (created, truncated), write(2) the bytes
 *    in 64 KiB chunks, close. No fsync: the data goes into the page cache.
 *
 * bench/run checks N against the file's size and S against the generator's
 * sum, and compares OUT with IN byte for byte. BYTES is not used here (the
 * run script passes it to every contender).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define STEP 16384

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path) {
  fprintf(stderr, "files-floor: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

/* The check sum of the chunk 'p[0, n)' found at file offset 'off'. */
static uint64_t sample(const unsigned char *p, size_t n, uint64_t off) {
  uint64_t s = 0;
  for (uint64_t at = (off + STEP - 1) / STEP * STEP; at < off + n; at += STEP)
    s += (uint64_t)p[at - off] * (at / STEP + 1);
  return s;
}

static ssize_t read_chunk(int fd, void *buf, size_t n, const char *path) {
  ssize_t got;
  do got = read(fd, buf, n);
  while (got < 0 && errno == EINTR);
  if (got < 0) die("read", path);
  return got;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: files-floor IN OUT [BYTES]\n");
    return 2;
  }
  const char *in = argv[1], *out = argv[2];
  static unsigned char buf[CHUNK];

  /* 1. read */
  double t0 = now_s();
  int fd = open(in, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", in);
  uint64_t total = 0, sum = 0;
  ssize_t got;
  while ((got = read_chunk(fd, buf, CHUNK, in)) > 0) {
    sum += sample(buf, (size_t)got, total);
    total += (uint64_t)got;
  }
  close(fd);
  double read_s = now_s() - t0;

  /* 2. load */
  unsigned char *data = malloc(total > 0 ? total : 1);
  if (data == NULL) die("malloc for", in);
  fd = open(in, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", in);
  uint64_t have = 0;
  while (have < total &&
         (got = read_chunk(fd, data + have, total - have < CHUNK ? total - have : CHUNK, in)) > 0)
    have += (uint64_t)got;
  close(fd);
  if (have != total) {
    fprintf(stderr, "files-floor: %s changed size between reads\n", in);
    return 1;
  }

  /* 3. write */
  double t1 = now_s();
  fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open", out);
  for (uint64_t done = 0; done < total;) {
    size_t n = total - done < CHUNK ? (size_t)(total - done) : CHUNK;
    ssize_t w = write(fd, data + done, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("write", out);
    done += (uint64_t)w;
  }
  if (close(fd) != 0) die("close", out);
  double write_s = now_s() - t1;
  free(data);

  printf("bytes=%llu read_s=%.6f write_s=%.6f sum=%llu chunk=%d clock=monotonic\n",
         (unsigned long long)total, read_s, write_s, (unsigned long long)sum, CHUNK);
  return 0;
}
