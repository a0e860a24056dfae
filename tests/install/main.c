/* A C99 trainer-side consumer: two loopback ranks, one s3gd_mv exchange. Exits non-zero on
 * any failure or wrong value. */
#include <signvote/signvote.h>
#include <stdio.h>
#include <stdlib.h>

#define N 8

int main(void) {
  svComm_t comms[2];
  svBucket_t buckets[2];
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  float g[2][N] = {{4, 0, 0, 0, 0, 0, 0, -1}, {3, 0, 0, 0, 0, 0, 0, -2}};
  float out[2][N];
  void* ws[2];
  size_t bytes = 0;
  int r;
  cfg.count = N;
  cfg.k = 2;
  if (svCommInitLoopback(comms, 2, NULL) != svSuccess) return 1;
  for (r = 0; r < 2; ++r) {
    if (svBucketCreate(&buckets[r], comms[r], &cfg) != svSuccess) return 2;
    if (svExchange(buckets[r], NULL, NULL, NULL, &bytes, NULL) != svSuccess) return 3;
    ws[r] = malloc(bytes);
  }
  svGroupStart();
  for (r = 0; r < 2; ++r) svExchange(buckets[r], g[r], out[r], ws[r], &bytes, NULL);
  if (svGroupEnd() != svSuccess) {
    fprintf(stderr, "%s\n", svGetLastError(comms[0]));
    return 4;
  }
  if (out[1][0] != 1.0f || out[1][7] != -1.0f || out[1][3] != 0.0f) return 5;
  for (r = 0; r < 2; ++r) {
    svBucketDestroy(buckets[r]);
    svCommDestroy(comms[r]);
    free(ws[r]);
  }
  printf("consumer: ok\n");
  return 0;
}
