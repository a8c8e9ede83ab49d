//! dunning-schedule
