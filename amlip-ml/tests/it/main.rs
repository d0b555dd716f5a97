//! amlip-ml's integration tests, one binary: data sets from every format and their defects
//! (`datasets`), and AML on MNIST against its accuracy bounds (`aml_mnist`).

mod aml_mnist;
mod datasets;
