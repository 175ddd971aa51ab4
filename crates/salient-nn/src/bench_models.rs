//! The two MNIST networks of the throughput benchmarks (`bench/`), as IR layer lists, so that the
//! benchmark programs and the CPU-vs-CUDA test build exactly the networks that
//! `bench/torch_train.py` mirrors in PyTorch.

use salient_ir::Layer;

/// The names [`layers`] knows.
pub const NAMES: [&str; 2] = ["quickstart", "ismail"];

/// The layers of benchmark network `name` for a 1 x 28 x 28 input:
/// - `quickstart`: the quickstart CNN (`specs/quickstart.exp`): conv5x5(16, pad 2) relu maxpool2
///   conv5x5(32, pad 2) relu maxpool2 flatten dense(128) relu dense(10);
/// - `ismail`: Ismail et al.'s MNIST CNN (`specs/ismail_sgt.exp`): conv3x3(32) relu conv3x3(64)
///   relu maxpool2 dropout(0.25) flatten dense(128) relu dropout(0.5) dense(10).
pub fn layers(name: &str) -> Option<Vec<Layer>> {
    use Layer::*;
    let conv = |out, kernel, padding| Conv {
        out,
        kernel,
        stride: 1,
        padding,
    };
    match name {
        "quickstart" => Some(vec![
            conv(16, 5, 2),
            Relu,
            MaxPool { size: 2, stride: 2 },
            conv(32, 5, 2),
            Relu,
            MaxPool { size: 2, stride: 2 },
            Flatten,
            Dense { out: 128 },
            Relu,
            Dense { out: 10 },
        ]),
        "ismail" => Some(vec![
            conv(32, 3, 0),
            Relu,
            conv(64, 3, 0),
            Relu,
            MaxPool { size: 2, stride: 2 },
            Dropout { p: 0.25 },
            Flatten,
            Dense { out: 128 },
            Relu,
            Dropout { p: 0.5 },
            Dense { out: 10 },
        ]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::infer::model_def;
    use salient_ir::Shape;

    /// Parameter counts of the PyTorch equivalents (sum of numel over `model.parameters()`).
    #[test]
    fn parameter_counts_match_pytorch() {
        let input = Shape::Image { c: 1, h: 28, w: 28 };
        let count = |n: &str| model_def(n, input, layers(n).unwrap()).unwrap().params;
        // conv 1*16*25+16, conv 16*32*25+32, dense 1568*128+128, dense 128*10+10.
        assert_eq!(count("quickstart"), 416 + 12_832 + 200_832 + 1_290);
        // conv 1*32*9+32, conv 32*64*9+64, dense 9216*128+128, dense 1290.
        assert_eq!(count("ismail"), 320 + 18_496 + 1_179_776 + 1_290);
        assert!(layers("resnet").is_none());
        assert!(NAMES.iter().all(|n| layers(n).is_some()));
    }
}
