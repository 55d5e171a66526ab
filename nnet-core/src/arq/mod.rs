//! The KCP ARQ engine (placeholder until the engine lands).
