//! The MNIST embedding: each pixel is one of two constants, on or off.
//!
//! Pixel j (0..784) becomes constant j if its value exceeds 25.6 (of 255), else j + 784. An
//! image is the term of its 784 constants; the class constant v is 1568, so |C| = 1569.

use ndarray::ArrayView2;

use super::bits::Bits;
use crate::dataset::mnist::PIXELS;

/// Number of constants of the MNIST embedding.
pub const N_CONSTANTS: usize = 2 * PIXELS + 1;
/// The class constant.
pub const V: usize = 2 * PIXELS;
/// A pixel brighter than this (of 255) is "on".
pub const THRESHOLD: f32 = 25.6;

/// The term of one image (784 pixel bytes).
pub fn term(image: &[u8]) -> Bits {
    debug_assert_eq!(image.len(), PIXELS);
    Bits::from_ones(
        N_CONSTANTS,
        image
            .iter()
            .enumerate()
            .map(|(j, &p)| if p as f32 > THRESHOLD { j } else { j + PIXELS }),
    )
}

/// The terms of a batch of images (one per row).
pub fn terms(images: ArrayView2<'_, u8>) -> Vec<Bits> {
    images
        .rows()
        .into_iter()
        .map(|row| match row.as_slice() {
            Some(s) => term(s),
            None => term(&row.to_vec()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pixel_is_exactly_one_constant() {
        let mut img = vec![0u8; PIXELS];
        img[0] = 26;
        img[1] = 25;
        img[783] = 255;
        let t = term(&img);
        assert_eq!(t.count(), PIXELS);
        assert!(t.contains(0) && !t.contains(PIXELS));
        assert!(!t.contains(1) && t.contains(1 + PIXELS));
        assert!(t.contains(783));
        assert!(!t.contains(V));
    }
}
