use std::arch::x86_64::*;
use std::time::Instant;
#[target_feature(enable = "avx512f")]
unsafe fn g32(t: &[u32], iters: usize) -> u32 {
    let mask = _mm512_set1_epi32((t.len() - 1) as i32);
    let mut a = _mm512_setr_epi32(0,97,194,291,388,485,582,679,776,873,970,1067,1164,1261,1358,1455);
    let mut b = _mm512_add_epi32(a, _mm512_set1_epi32(7));
    let mut c = _mm512_add_epi32(a, _mm512_set1_epi32(13));
    let mut d = _mm512_add_epi32(a, _mm512_set1_epi32(29));
    for _ in 0..iters {
        a = _mm512_and_si512(_mm512_i32gather_epi32::<4>(a, t.as_ptr() as *const i32), mask);
        b = _mm512_and_si512(_mm512_i32gather_epi32::<4>(b, t.as_ptr() as *const i32), mask);
        c = _mm512_and_si512(_mm512_i32gather_epi32::<4>(c, t.as_ptr() as *const i32), mask);
        d = _mm512_and_si512(_mm512_i32gather_epi32::<4>(d, t.as_ptr() as *const i32), mask);
    }
    _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a,b),_mm512_add_epi32(c,d))) as u32
}
#[target_feature(enable = "avx512f")]
unsafe fn g64(t: &[u32], iters: usize) -> u32 {
    let mask = _mm512_set1_epi64((t.len()/2 - 1) as i64);
    let mut a = _mm512_setr_epi64(0,97,194,291,388,485,582,679);
    let mut b = _mm512_add_epi64(a, _mm512_set1_epi64(7));
    let mut c = _mm512_add_epi64(a, _mm512_set1_epi64(13));
    let mut d = _mm512_add_epi64(a, _mm512_set1_epi64(29));
    let tp = t.as_ptr() as *const i64;
    for _ in 0..iters {
        // 8 lanes each: two per "16 lanes"
        a = _mm512_and_si512(_mm512_i64gather_epi64::<8>(a, tp), mask);
        b = _mm512_and_si512(_mm512_i64gather_epi64::<8>(b, tp), mask);
        c = _mm512_and_si512(_mm512_i64gather_epi64::<8>(c, tp), mask);
        d = _mm512_and_si512(_mm512_i64gather_epi64::<8>(d, tp), mask);
    }
    _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a,b),_mm512_add_epi64(c,d))) as u32
}
#[target_feature(enable = "avx2")]
unsafe fn g32y(t: &[u32], iters: usize) -> u32 {
    let mask = _mm256_set1_epi32((t.len() - 1) as i32);
    let mut a = _mm256_setr_epi32(0,97,194,291,388,485,582,679);
    let mut b = _mm256_add_epi32(a, _mm256_set1_epi32(7));
    let mut c = _mm256_add_epi32(a, _mm256_set1_epi32(13));
    let mut d = _mm256_add_epi32(a, _mm256_set1_epi32(29));
    let tp = t.as_ptr() as *const i32;
    for _ in 0..iters {
        a = _mm256_and_si256(_mm256_i32gather_epi32::<4>(tp, a), mask);
        b = _mm256_and_si256(_mm256_i32gather_epi32::<4>(tp, b), mask);
        c = _mm256_and_si256(_mm256_i32gather_epi32::<4>(tp, c), mask);
        d = _mm256_and_si256(_mm256_i32gather_epi32::<4>(tp, d), mask);
    }
    let s = _mm256_add_epi32(_mm256_add_epi32(a,b),_mm256_add_epi32(c,d));
    _mm256_extract_epi32::<0>(s) as u32
}
#[target_feature(enable = "avx512f")]
unsafe fn g32x8(t: &[u32], iters: usize) -> u32 {
    let mask = _mm512_set1_epi32((t.len() - 1) as i32);
    let a0 = _mm512_setr_epi32(0,97,194,291,388,485,582,679,776,873,970,1067,1164,1261,1358,1455);
    let mut v = [a0; 8];
    for k in 0..8 { v[k] = _mm512_add_epi32(a0, _mm512_set1_epi32(k as i32 * 11)); }
    let tp = t.as_ptr() as *const i32;
    for _ in 0..iters/2 {
        for k in 0..8 { v[k] = _mm512_and_si512(_mm512_i32gather_epi32::<4>(v[k], tp), mask); }
    }
    let mut s = v[0]; for k in 1..8 { s = _mm512_add_epi32(s, v[k]); }
    _mm512_reduce_add_epi32(s) as u32
}
fn main() {
    for &size in &[4096usize, 65536, 262144] {
        let mut t = vec![0u32; size];
        let mut x = 12345u64;
        for v in t.iter_mut() { x ^= x << 13; x ^= x >> 7; x ^= x << 17; *v = (x as u32) & (size as u32 - 1); }
        let iters = 2_000_000;
        for (name, f) in [("g32 zmm16", g32 as unsafe fn(&[u32], usize) -> u32), ("g32 zmm16 8 chains", g32x8), ("g64 zmm8", g64), ("g32 ymm8", g32y)] {
            let mut best = f64::MAX;
            for _ in 0..5 { let s = Instant::now(); let r = unsafe { f(&t, iters) }; std::hint::black_box(r); best = best.min(s.elapsed().as_secs_f64()); }
            let per = best / (iters as f64 * 4.0) * 3.5e9;
            println!("table {} KB {name}: {:.2} cycles per gather", size*4/1024, per);
        }
    }
}
