# Kept empty on purpose: importing hf_dgm.gan.networks_gan must not import transformers (fast sampling path).
