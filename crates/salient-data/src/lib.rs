//! salient-data
