"""The method, as the paper's figure draws it: the five boxes (models), their losses, the training
step, synthesis of unseen features, and the classifiers that evaluate them."""
