//! salient-lang
