/* files generator: writes the test file of the files benchmark.
 *
 *   usage: files-gen PATH MIB
 *   prints: bytes=N sum=S
 *
 * The content is a fixed xorshift64* stream (the same file on every run and
 * every machine for a given size), so it is neither zeros nor a repeating
 * pattern that a broken read could reproduce by accident. S is the
 * benchmark's check sum of the file, which every contender computes over
 * what it reads and prints: the byte at each offset p that is a multiple of
 * 16384 (four bytes per 64 KiB chunk, spread over it), times p / 16384 + 1,
 * all added up. The weights make a chunk read twice, skipped or out of place
 * change the sum, and the sum stays below 2^53 (exact in a JavaScript
 * number) up to files of terabytes. Few bytes, so that the check costs the
 * Lua, Python and JavaScript contenders little next to the reads; every
 * byte is checked in the end all the same, since bench/run compares the
 * file each contender writes back with this one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (1024 * 1024)
#define STEP 16384

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: files-gen PATH MIB\n");
    return 2;
  }
  long mib = strtol(argv[2], NULL, 10);
  if (mib <= 0) {
    fprintf(stderr, "files-gen: MIB must be a positive integer\n");
    return 2;
  }
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "files-gen: open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  uint64_t *block = malloc(BLOCK);
  if (block == NULL) {
    perror("files-gen: malloc");
    return 1;
  }
  uint64_t x = 0x9e3779b97f4a7c15u, sum = 0;
  for (long b = 0; b < mib; b++) {
    for (size_t i = 0; i < BLOCK / sizeof *block; i++) {
      x ^= x >> 12;
      x ^= x << 25;
      x ^= x >> 27;
      block[i] = x * 0x2545f4914f6cdd1du;
    }
    const unsigned char *bytes = (const unsigned char *)block;
    uint64_t base = (uint64_t)b * BLOCK;
    for (size_t p = 0; p < BLOCK; p += STEP)
      sum += (uint64_t)bytes[p] * ((base + p) / STEP + 1);
    for (size_t done = 0; done < BLOCK;) {
      ssize_t n = write(fd, bytes + done, BLOCK - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        fprintf(stderr, "files-gen: write %s: %s\n", argv[1], strerror(errno));
        return 1;
      }
      done += (size_t)n;
    }
  }
  if (close(fd) != 0) {
    fprintf(stderr, "files-gen: close %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  free(block);
  printf("bytes=%" PRIu64 " sum=%" PRIu64 "\n", (uint64_t)mib * BLOCK, sum);
  return 0;
}
