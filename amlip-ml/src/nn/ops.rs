//! The kernels layers are made of: matrix products (through the `gemm` crate, which picks
//! AVX2/FMA or AVX-512 code at run time) and the im2col / col2im copies that turn a
//! convolution into one.

/// `c = a * b + beta * c`, with `a` `[m, k]` (stored `[k, m]` if `at`) and `b` `[k, n]`
/// (stored `[n, k]` if `bt`), all row-major; `c` is `[m, n]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    at: bool,
    b: &[f32],
    bt: bool,
    c: &mut [f32],
    beta: f32,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm sizes"
    );
    let (rsa, csa) = if at { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if bt { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the strides above address only a[..m*k], b[..k*n] and c[..m*n], whose lengths
    // were checked; c does not alias a or b (a &mut borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Unfolds one `[c, h, w]` image for a `kernel` x `kernel` convolution: `col` becomes
/// `[c * kernel * kernel, oh * ow]`, a column per output position.
pub(super) fn im2col(x: &[f32], (c, h, w): (usize, usize, usize), kernel: usize, col: &mut [f32]) {
    let (oh, ow) = (h - kernel + 1, w - kernel + 1);
    let mut row = 0;
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for ki in 0..kernel {
            for kj in 0..kernel {
                let dst = &mut col[row * oh * ow..(row + 1) * oh * ow];
                for y in 0..oh {
                    let src = &plane[(y + ki) * w + kj..(y + ki) * w + kj + ow];
                    dst[y * ow..(y + 1) * ow].copy_from_slice(src);
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column's values back onto the image positions they
/// came from.
pub(super) fn col2im(col: &[f32], (c, h, w): (usize, usize, usize), kernel: usize, x: &mut [f32]) {
    let (oh, ow) = (h - kernel + 1, w - kernel + 1);
    let mut row = 0;
    for ch in 0..c {
        let plane = &mut x[ch * h * w..(ch + 1) * h * w];
        for ki in 0..kernel {
            for kj in 0..kernel {
                let src = &col[row * oh * ow..(row + 1) * oh * ow];
                for y in 0..oh {
                    let dst = &mut plane[(y + ki) * w + kj..(y + ki) * w + kj + ow];
                    for (d, s) in dst.iter_mut().zip(&src[y * ow..(y + 1) * ow]) {
                        *d += s;
                    }
                }
                row += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_transposes_by_strides() {
        // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]]
        let (a, b) = ([1., 2., 3., 4.], [5., 6., 7., 8.]);
        let mut c = [0.0; 4];
        gemm(2, 2, 2, &a, false, &b, false, &mut c, 0.0);
        assert_eq!(c, [19., 22., 43., 50.]);
        gemm(2, 2, 2, &a, true, &b, false, &mut c, 0.0);
        assert_eq!(c, [26., 30., 38., 44.]);
        gemm(2, 2, 2, &a, false, &b, true, &mut c, 1.0);
        assert_eq!(c, [26. + 17., 30. + 23., 38. + 39., 44. + 53.]);
    }

    #[test]
    fn col2im_is_im2col_s_adjoint() {
        let dims = (2, 4, 5);
        let x: Vec<f32> = (0..40).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut col = vec![0.0; 2 * 9 * 2 * 3];
        im2col(&x, dims, 3, &mut col);
        let y: Vec<f32> = (0..col.len()).map(|i| (i % 7) as f32 - 2.0).collect();
        let mut back = vec![0.0; 40];
        col2im(&y, dims, 3, &mut back);
        let lhs: f32 = col.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }
}

#[cfg(test)]
mod brute {
    use super::*;

    #[test]
    fn gemm_matches_a_naive_product_for_every_transpose_and_beta() {
        let mut seed = 1u64;
        let mut r = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((seed >> 33) % 1000) as f32 / 100.0 - 5.0
        };
        for &(m, k, n) in &[
            (1, 1, 1),
            (2, 9, 16),
            (3, 18, 9),
            (4, 2, 3),
            (64, 288, 576),
            (7, 5, 1),
            (1, 7, 5),
            (10, 128, 3),
        ] {
            for at in [false, true] {
                for bt in [false, true] {
                    for beta in [0.0f32, 1.0] {
                        let a: Vec<f32> = (0..m * k).map(|_| r()).collect();
                        let b: Vec<f32> = (0..k * n).map(|_| r()).collect();
                        let c0: Vec<f32> = (0..m * n).map(|_| r()).collect();
                        let mut c = c0.clone();
                        gemm(m, k, n, &a, at, &b, bt, &mut c, beta);
                        for i in 0..m {
                            for j in 0..n {
                                let mut s = beta * c0[i * n + j];
                                for l in 0..k {
                                    let av = if at { a[l * m + i] } else { a[i * k + l] };
                                    let bv = if bt { b[j * k + l] } else { b[l * n + j] };
                                    s += av * bv;
                                }
                                let got = c[i * n + j];
                                assert!((got - s).abs() <= 1e-3 * (1.0 + s.abs()), "m{m} k{k} n{n} at{at} bt{bt} beta{beta}: [{i},{j}] {got} vs {s}");
                            }
                        }
                    }
                }
            }
        }
    }
}
