// scripts/bench: the graphile-worker peer's job; does nothing.
module.exports = async () => {};
