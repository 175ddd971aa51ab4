//! salient-engine
