//! Scratch: do a scalar walk (8 lanes) and an AVX-512 gather walk (16 lanes) overlap on this
//! CPU when interleaved in one loop? Times scalar-only, vector-only and both, per iteration.
use std::arch::x86_64::*;
use std::time::Instant;

const NF: usize = 41;
const ROWS: usize = 1024;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[inline(always)]
fn sstep(keys: &[u32], fls: &[u32], buf: &[u32], node: &mut [usize; 8], off: &[usize; 8]) {
    // The real kernel's step, in asm so the compiler cannot vectorise the lanes: nodes are
    // 8 bytes (key, feature | left << 8), interleaved in `pairs` (the `keys` argument; `fls`
    // unused).
    let _ = fls;
    let np = keys.as_ptr();
    let bp = buf.as_ptr();
    let [mut n0, mut n1, mut n2, mut n3, mut n4, mut n5, mut n6, mut n7] = *node;
    macro_rules! lane {
        ($n:ident, $o:expr) => {
            unsafe {
                std::arch::asm!(
                    "mov {k:e}, [{np} + {n}*8]",
                    "mov {n:e}, [{np} + {n}*8 + 4]",
                    "movzx {t}, {n:l}",
                    "add {t}, {o}",
                    "shr {n:e}, 8",
                    "cmp [{bp} + {t}*4], {k:e}",
                    "adc {n}, 0",
                    np = in(reg) np, bp = in(reg) bp, o = in(reg) $o,
                    n = inout(reg) $n, k = out(reg) _, t = out(reg) _,
                    options(nostack, readonly),
                );
            }
        };
    }
    lane!(n0, off[0]);
    lane!(n1, off[1]);
    lane!(n2, off[2]);
    lane!(n3, off[3]);
    lane!(n4, off[4]);
    lane!(n5, off[5]);
    lane!(n6, off[6]);
    lane!(n7, off[7]);
    *node = [n0, n1, n2, n3, n4, n5, n6, n7];
}

#[target_feature(enable = "avx512f")]
unsafe fn run(pairs: &[u32], keys: &[u32], fls: &[u32], buf: &[u32], iters: usize, srounds: usize, vec: bool) -> u64 {
    let mut node = [0usize, 1, 2, 3, 4, 5, 6, 7];
    let off: [usize; 8] = std::array::from_fn(|k| k * NF);
    let mut vi = _mm512_setr_epi32(9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24);
    let mut vi2 = _mm512_setr_epi32(29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44);
    let voff = _mm512_setr_epi32(
        0, 41, 82, 123, 164, 205, 246, 287, 328, 369, 410,
        451, 492, 533, 574, 615,
    );
    let m8 = _mm512_set1_epi32(0xff);
    let one = _mm512_set1_epi32(1);
    let kp = keys.as_ptr() as *const i32;
    let fp = fls.as_ptr() as *const i32;
    let bp = buf.as_ptr() as *const i32;
    for _ in 0..iters {
        if vec {
            let key = _mm512_i32gather_epi32::<4>(vi, kp);
            let fl = _mm512_i32gather_epi32::<4>(vi, fp);
            let a = _mm512_add_epi32(voff, _mm512_and_si512(fl, m8));
            let v = _mm512_i32gather_epi32::<4>(a, bp);
            let gt = _mm512_cmpgt_epu32_mask(v, key);
            vi = _mm512_mask_add_epi32(_mm512_srli_epi32::<8>(fl), gt, _mm512_srli_epi32::<8>(fl), one);
            let key = _mm512_i32gather_epi32::<4>(vi2, kp);
            let fl = _mm512_i32gather_epi32::<4>(vi2, fp);
            let a = _mm512_add_epi32(voff, _mm512_and_si512(fl, m8));
            let v = _mm512_i32gather_epi32::<4>(a, bp);
            let gt = _mm512_cmpgt_epu32_mask(v, key);
            vi2 = _mm512_mask_add_epi32(_mm512_srli_epi32::<8>(fl), gt, _mm512_srli_epi32::<8>(fl), one);
        }
        for _ in 0..srounds {
            sstep(pairs, fls, buf, &mut node, &off);
        }
    }
    node.iter().sum::<usize>() as u64 + _mm512_reduce_add_epi32(_mm512_add_epi32(vi, vi2)) as u64
}

fn main() {
    let n = 2048usize;
    let mut r = Rng(0x9e3779b97f4a7c15);
    let fls: Vec<u32> = (0..n)
        .map(|_| ((r.next() % (n as u64 - 1)) as u32) << 8 | (r.next() % NF as u64) as u32)
        .collect();
    let mut keys: Vec<u32> = (0..n).map(|_| r.next() as u32).collect();
    // Scalar lanes read interleaved (key, fl) pairs from `pairs`; vector lanes the two arrays.
    let pairs: Vec<u32> = (0..n).flat_map(|i| [keys[i], fls[i]]).collect();
    keys.truncate(n);
    let buf: Vec<u32> = (0..ROWS * NF).map(|_| r.next() as u32).collect();
    let iters = 200_000;
    let configs: [(usize, bool); 7] = [(4, false), (0, true), (4, true), (2, false), (2, true), (8, false), (8, true)];
    for round in 0..3 {
        for &(s, v) in &configs {
            let mut best = f64::MAX;
            let mut sink = 0;
            for _ in 0..15 {
                let t = Instant::now();
                sink ^= unsafe { run(&pairs, &keys, &fls, &buf, iters, s, v) };
                best = best.min(t.elapsed().as_secs_f64());
            }
            let ns = best / iters as f64 * 1e9;
            println!(
                "round {round}: scalar rounds {s} (x8 lane-steps), vector {} (2x16 lane-steps): {:.2} ns/iter = {:.1} cycles at 3.55 GHz (sink {})",
                v, ns, ns * 3.55, sink % 10
            );
        }
    }
}
