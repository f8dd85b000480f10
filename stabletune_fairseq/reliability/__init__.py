"""What protects a run and its inputs: safe and clear checkpoint loading, recovery of a damaged
``checkpoint_last.pt``, atomic checkpoint copies and full disks, preemption, one run per save dir, what a
checkpoint was trained on, and the exit statuses. ``train_guard`` wires them into fairseq-train."""
