//! The kernels layers are made of: matrix products (through `matrixmultiply`, which picks
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
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
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
