"""How well a typo'd published name is answered (nca.published.closest_name; issue 25).

    python bench/typo_names.py

Power: every published name with 5 random one-character edits (deletion, substitution,
insertion, swap; random.Random(0)), the fraction that gets the right name suggested.
False positives: 20 emoji that are not published x 3 experiments, the fraction that gets
any suggestion. Results in docs/validation/house.md.
"""
import random, string
import nca
from nca.published import published_names
names = published_names(); rng = random.Random(0)
def suggestion(n):
    try: nca.load_model(n)
    except nca.NCAError as e:
        m = str(e); return m.split("did you mean '")[1].split("'")[0] if "did you mean" in m else None
def typo(n):
    pre, body = n.split(":"); i = rng.randrange(len(body)); k = rng.choice("del sub ins swap".split())
    c = rng.choice(string.ascii_lowercase)
    if k == "del": body = body[:i] + body[i+1:]
    elif k == "sub": body = body[:i] + c + body[i+1:]
    elif k == "ins": body = body[:i] + c + body[i:]
    else: body = body[:i] + body[i+1:i+2] + body[i:i+1] + body[i+2:]
    return pre + ":" + body
hits = miss = wrong = 0; n = 0
for name in names:
    for _ in range(5):
        t = typo(name)
        if t in names: continue
        n += 1; s = suggestion(t)
        hits += s == name; wrong += s not in (None, name); miss += s is None
print(f"one-edit typos: n={n}, right name suggested {hits}, wrong name {wrong}, none {miss}")
others = ["unicorn", "dog", "cat", "rocket", "house", "tree", "sun", "moon", "star", "fish", "bird", "snake",
          "flower", "apple", "car", "boat", "heart", "skull", "ghost", "robot"]
fp = sum(suggestion(f"distill:{o}/{e}") is not None for o in others for e in ("growing", "persistent", "regenerating"))
print(f"other emoji (not published), n={3*len(others)}: a suggestion in {fp}")
