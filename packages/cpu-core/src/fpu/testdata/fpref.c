/* Reference vectors from the host's IEEE 754 hardware (x86-64 SSE / AArch64 both detect
 * tininess after rounding, like RISC-V). Built by fpu-host.test.ts with
 *   gcc -O0 -ffp-contract=off -frounding-math -fsignaling-nans fpref.c -lm
 * stdin: one vector per line, "op rm a b c" (op, rm decimal; a b c hex bit patterns).
 * stdout: "result flags" (result hex, flags decimal in RISC-V fflags encoding).
 * rm: 0 RNE, 1 RTZ, 2 RDN, 3 RUP (the host has no RMM).
 * Results are raw host results (NaN payloads included); the test applies RISC-V's
 * canonical-NaN rule. Float-to-integer conversions use the host's nearbyint() for the
 * rounding and apply RISC-V's saturation table (unpriv §20.7) explicitly, since
 * C casts of out-of-range values are undefined. */
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static float f32(uint64_t b) { uint32_t u = (uint32_t)b; float f; memcpy(&f, &u, 4); return f; }
static double f64(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static uint64_t b32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static uint64_t b64(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

static const int modes[4] = {FE_TONEAREST, FE_TOWARDZERO, FE_DOWNWARD, FE_UPWARD};

static int rvflags(void) {
  int r = 0;
  if (fetestexcept(FE_INEXACT)) r |= 1;
  if (fetestexcept(FE_UNDERFLOW)) r |= 2;
  if (fetestexcept(FE_OVERFLOW)) r |= 4;
  if (fetestexcept(FE_DIVBYZERO)) r |= 8;
  if (fetestexcept(FE_INVALID)) r |= 16;
  return r;
}

/* kind: 0 W, 1 WU, 2 L, 3 LU. Returns the 64-bit x-register value; sets *fl. */
static uint64_t toint(double x, int kind, int *fl) {
  if (isnan(x)) {
    *fl = 16;
    return kind == 0 ? 0x7fffffffULL : kind == 1 ? ~0ULL : kind == 2 ? 0x7fffffffffffffffULL : ~0ULL;
  }
  double r = nearbyint(x);
  int inexact = r != x;
  double lo = kind == 0 ? -2147483648.0 : kind == 2 ? -9223372036854775808.0 : 0.0;
  if (r < lo) {
    *fl = 16;
    return kind == 0 ? 0xffffffff80000000ULL : kind == 2 ? 0x8000000000000000ULL : 0;
  }
  int over = kind == 0 ? r > 2147483647.0 : kind == 1 ? r > 4294967295.0 : kind == 2 ? r >= 9223372036854775808.0 : r >= 18446744073709551616.0;
  if (over) {
    *fl = 16;
    return kind == 0 ? 0x7fffffffULL : kind == 1 ? ~0ULL : kind == 2 ? 0x7fffffffffffffffULL : ~0ULL;
  }
  *fl = inexact ? 1 : 0;
  if (kind == 0) return (uint64_t)(int64_t)(int32_t)r;
  if (kind == 1) return (uint64_t)(int64_t)(int32_t)(uint32_t)r;
  if (kind == 2) return (uint64_t)(int64_t)r;
  return (uint64_t)r;
}

int main(void) {
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    int op, rm;
    unsigned long long A = 0, B = 0, C = 0;
    if (sscanf(line, "%d %d %llx %llx %llx", &op, &rm, &A, &B, &C) < 3) continue;
    fesetround(modes[rm & 3]);
    feclearexcept(FE_ALL_EXCEPT);
    uint64_t res = 0;
    int fl = -1;
    volatile float fa = f32(A), fb = f32(B), fc = f32(C);
    volatile double da = f64(A), db = f64(B), dc = f64(C);
    switch (op) {
      case 0: res = b32(fa + fb); break;
      case 1: res = b32(fa - fb); break;
      case 2: res = b32(fa * fb); break;
      case 3: res = b32(fa / fb); break;
      case 4: res = b32(sqrtf(fa)); break;
      case 5: res = b32(fmaf(fa, fb, fc)); break;
      case 6: res = b32(fmaf(fa, fb, -fc)); break;
      case 7: res = b32(fmaf(-fa, fb, fc)); break;
      case 8: res = b32(fmaf(-fa, fb, -fc)); break;
      case 10: res = b64(da + db); break;
      case 11: res = b64(da - db); break;
      case 12: res = b64(da * db); break;
      case 13: res = b64(da / db); break;
      case 14: res = b64(sqrt(da)); break;
      case 15: res = b64(fma(da, db, dc)); break;
      case 16: res = b64(fma(da, db, -dc)); break;
      case 17: res = b64(fma(-da, db, dc)); break;
      case 18: res = b64(fma(-da, db, -dc)); break;
      case 20: res = b32((float)da); break;
      case 21: res = b64((double)fa); break;
      case 22: case 23: case 24: case 25: {
        double v = (double)fa; /* exact; raises NV for sNaN like RISC-V */
        int f2;
        res = toint(v, op - 22, &f2);
        fl = f2 | (rvflags() & 16);
        break;
      }
      case 26: case 27: case 28: case 29: {
        int f2;
        res = toint(da, op - 26, &f2);
        fl = f2;
        break;
      }
      case 30: res = b32((float)(int32_t)(uint32_t)A); break;
      case 31: res = b32((float)(uint32_t)A); break;
      case 32: res = b32((float)(int64_t)A); break;
      case 33: res = b32((float)(uint64_t)A); break;
      case 34: res = b64((double)(int32_t)(uint32_t)A); break;
      case 35: res = b64((double)(uint32_t)A); break;
      case 36: res = b64((double)(int64_t)A); break;
      case 37: res = b64((double)(uint64_t)A); break;
      case 38: res = fa == fb; break;
      case 39: res = fa < fb; break;
      case 40: res = fa <= fb; break;
      case 41: res = da == db; break;
      case 42: res = da < db; break;
      case 43: res = da <= db; break;
      default: res = 0; break;
    }
    if (fl < 0) fl = rvflags();
    printf("%llx %d\n", (unsigned long long)res, fl);
  }
  return 0;
}
