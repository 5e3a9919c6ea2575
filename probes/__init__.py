"""Linear probes over the activation store (compliance vs refusal, cross-lingual and base-to-fine-tuned transfer)."""
