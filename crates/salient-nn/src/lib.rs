//! salient-nn
