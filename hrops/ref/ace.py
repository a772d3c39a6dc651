"""SEAN's ACE epilogue in plain PyTorch."""

__all__ = ["ace_modulate"]


def ace_modulate(x, gamma_spade, beta_spade, gamma_avg=None, beta_avg=None, alpha=None):
    """SEAN's eager ACE epilogue (ZPdesu/SEAN, models/networks/normalization.py,
    ACE.forward: the final gamma/beta blend and modulation); alpha = the
    sigmoids of (blending_gamma, blending_beta)."""
    if gamma_avg is None:
        return x * (1 + gamma_spade) + beta_spade
    gamma = alpha[0] * gamma_avg + (1 - alpha[0]) * gamma_spade
    beta = alpha[1] * beta_avg + (1 - alpha[1]) * beta_spade
    return x * (1 + gamma) + beta
