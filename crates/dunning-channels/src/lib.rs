//! dunning-channels
