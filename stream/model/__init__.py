"""The customer-base model: how often each customer buys, whether they are still a customer,
and what they spend, fitted to the shop's own history ("buy till you die" models).

- `purchases.py`: a customer's counted orders as purchase days (x, t_x, T, mean repeat value).
- `bgnbd.py`: BG/NBD (Fader, Hardie & Lee 2005) and MBG/NBD (Batislam et al. 2007): fit,
  P(alive), expected purchases.
- `gamma_gamma.py`: the Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005).
- `simulate.py`: histories drawn from known parameters, for testing the fits.
- `scores.py`: a fitted model (model.json) and the scores of a customer at an instant.
"""
