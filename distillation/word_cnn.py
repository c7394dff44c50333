"""A small convolutional network over an answer's words: the student's second part, beside its linear bag.

The linear bag sees which n-grams occur; it cannot tell "the water evaporates" from a near-synonym it
never met, nor weigh a phrase by the words around it.  ``WordCNN`` reads the featuriser's ``word`` ids
(the item's most frequent training words, ``distillation.features.word_vocabulary``) through a small
embedding table initialised from the teacher's own word-piece embeddings (``embedding_init``: PCA of
each word's mean piece embedding), a width-3 convolution, ReLU, max and mean pooling over the words, and
a linear head: one number per answer on the level-index scale, like the linear part's.

Trained with torch (training only: AdamW, a learning rate decaying linearly to 0, a fixed number of
epochs, so the last iterate is the model); ``predict`` and the ONNX nodes (``onnx_nodes``) use the
fitted weights in numpy and onnxruntime, so serving stays torch-free.
"""

from __future__ import annotations

import numpy as np

from distillation.features import PAD_WORD


def embedding_init(spellings: list[str], tokenizer, table: np.ndarray, dim: int) -> np.ndarray:
    """``float32 [len(spellings), dim]``: the PCA to ``dim`` of each word's mean word-piece embedding
    (``table``: the teacher's input embedding matrix; ``tokenizer``: its tokenizer), scaled to unit std."""
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    e = np.stack([table[tokenizer(w, add_special_tokens=False)["input_ids"] or [unk]].mean(0)
                  for w in spellings]).astype(np.float64)
    e = e - e.mean(0)
    _, _, vt = np.linalg.svd(e, full_matrices=False)
    z = e @ vt[:dim].T
    if z.shape[1] < dim:  # fewer words than dimensions: the rest start at 0
        z = np.hstack([z, np.zeros((len(z), dim - z.shape[1]))])
    std = z.std()
    return (z / (std if std > 0 else 1.0)).astype(np.float32)


class WordCNN:
    """Embedding (row 0: padding, fixed at 0; row 1: any word outside the vocabulary, learnt) -> Conv1d
    (width 3, ``channels``) -> ReLU -> [max, mean] over the answer's words -> linear.  ``init``: the
    vocabulary's initial embeddings (``embedding_init``)."""

    def __init__(self, init: np.ndarray, channels: int = 32, epochs: int = 25, lr: float = 3e-3,
                 batch_size: int = 32, seed: int = 0):
        self.init = init
        self.channels = channels
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def _net(self):
        import torch
        from torch import nn

        init, h = np.asarray(self.init, np.float32), self.channels

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(len(init) + 2, init.shape[1], padding_idx=PAD_WORD)
                with torch.no_grad():
                    self.emb.weight[2:] = torch.from_numpy(init)
                    self.emb.weight[:2] = 0
                self.conv = nn.Conv1d(init.shape[1], h, 3, padding=1)
                self.head = nn.Linear(2 * h, 1)

            def forward(self, x):
                m = (x != PAD_WORD).float().unsqueeze(1)
                z = torch.relu(self.conv(self.emb(x).transpose(1, 2))) * m
                top = z.max(2).values  # ReLU outputs: padding's zeros never exceed a word's
                mean = z.sum(2) / m.sum(2).clamp(min=1)
                return self.head(torch.cat([top, mean], 1)).squeeze(1)

        return Net()

    def fit(self, words: np.ndarray, y: np.ndarray) -> WordCNN:
        """Least squares on ``y`` (level-index scale) from ``words`` (``int64 [n, w]`` word ids)."""
        import torch

        torch.manual_seed(self.seed)
        rng = np.random.RandomState(self.seed)
        net = self._net()
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        x = torch.from_numpy(np.ascontiguousarray(words, dtype=np.int64))
        t = torch.tensor(np.asarray(y), dtype=torch.float32)
        per_epoch = max(1, len(t) // self.batch_size)
        total = self.epochs * per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total))
        net.train()
        for _ in range(self.epochs):
            for b in np.array_split(rng.permutation(len(t)), per_epoch):
                opt.zero_grad()
                ((net(x[b]) - t[b]) ** 2).mean().backward()
                opt.step()
                sched.step()
        net.eval()
        g = lambda p: p.detach().numpy().astype(np.float32).copy()  # noqa: E731
        self.embedding_ = g(net.emb.weight)  # [V + 2, d]
        self.conv_weight_ = g(net.conv.weight)  # [h, d, 3]
        self.conv_bias_ = g(net.conv.bias)  # [h]
        self.head_weight_ = g(net.head.weight).reshape(-1)  # [2h]: max part, then mean part
        self.head_bias_ = float(net.head.bias.detach()[0])
        return self

    def predict(self, words: np.ndarray) -> np.ndarray:
        """The score of each answer (float64 [n]), computed in float32 as the ONNX graph does."""
        words = np.asarray(words, np.int64)
        n, w = words.shape
        e = self.embedding_[words]  # [n, w, d]
        padded = np.zeros((n, w + 2, e.shape[2]), np.float32)
        padded[:, 1:-1] = e
        z = self.conv_bias_[None, None, :] + sum(
            padded[:, k : k + w] @ self.conv_weight_[:, :, k].T for k in range(3))  # [n, w, h]
        m = (words != PAD_WORD).astype(np.float32)[:, :, None]
        z = np.maximum(z, 0) * m
        top, mean = z.max(1), z.sum(1) / np.maximum(m.sum(1), 1)
        return (np.concatenate([top, mean], 1) @ self.head_weight_ + self.head_bias_).astype(np.float64)

    def n_params(self) -> int:
        return int(self.embedding_.size + self.conv_weight_.size + self.conv_bias_.size
                   + self.head_weight_.size + 1)

    def onnx_nodes(self, share: float, out: str) -> tuple[list, list]:
        """Nodes and initialisers computing ``share * predict(word)`` as ``out`` (float [n]) from the graph
        input ``word`` (int64 [n, w])."""
        from onnx import TensorProto, helper, numpy_helper

        f32 = np.float32
        inits = [
            numpy_helper.from_array(self.embedding_.astype(f32), "cnn_embedding"),
            numpy_helper.from_array(self.conv_weight_.astype(f32), "cnn_conv_w"),
            numpy_helper.from_array(self.conv_bias_.astype(f32), "cnn_conv_b"),
            numpy_helper.from_array((share * self.head_weight_).astype(f32).reshape(-1, 1), "cnn_head_w"),
            numpy_helper.from_array(np.array([share * self.head_bias_], f32), "cnn_head_b"),
            numpy_helper.from_array(np.array([PAD_WORD], np.int64), "cnn_pad"),
            numpy_helper.from_array(np.array([1.0], f32), "cnn_one"),
            numpy_helper.from_array(np.array([2], np.int64), "cnn_axis2"),
            numpy_helper.from_array(np.array([1], np.int64), "cnn_axis1"),
            numpy_helper.from_array(np.array([-1], np.int64), "cnn_flat"),
        ]
        node = helper.make_node
        nodes = [
            node("Gather", ["cnn_embedding", "word"], ["cnn_e"], axis=0),  # [n, w, d]
            node("Transpose", ["cnn_e"], ["cnn_et"], perm=[0, 2, 1]),  # [n, d, w]
            node("Conv", ["cnn_et", "cnn_conv_w", "cnn_conv_b"], ["cnn_z0"], kernel_shape=[3], pads=[1, 1]),
            node("Relu", ["cnn_z0"], ["cnn_z1"]),  # [n, h, w]
            node("Equal", ["word", "cnn_pad"], ["cnn_is_pad"]),
            node("Not", ["cnn_is_pad"], ["cnn_is_word"]),
            node("Cast", ["cnn_is_word"], ["cnn_m0"], to=TensorProto.FLOAT),
            node("Unsqueeze", ["cnn_m0", "cnn_axis1"], ["cnn_m"]),  # [n, 1, w]
            node("Mul", ["cnn_z1", "cnn_m"], ["cnn_z"]),
            node("ReduceMax", ["cnn_z"], ["cnn_top"], axes=[2], keepdims=0),  # opset 17: axes an attribute  # [n, h]
            node("ReduceSum", ["cnn_z", "cnn_axis2"], ["cnn_sum"], keepdims=0),
            node("ReduceSum", ["cnn_m", "cnn_axis2"], ["cnn_count0"], keepdims=0),  # [n, 1]
            node("Max", ["cnn_count0", "cnn_one"], ["cnn_count"]),
            node("Div", ["cnn_sum", "cnn_count"], ["cnn_mean"]),
            node("Concat", ["cnn_top", "cnn_mean"], ["cnn_pool"], axis=1),  # [n, 2h]
            node("MatMul", ["cnn_pool", "cnn_head_w"], ["cnn_col"]),
            node("Add", ["cnn_col", "cnn_head_b"], ["cnn_col_b"]),
            node("Reshape", ["cnn_col_b", "cnn_flat"], [out]),
        ]
        return nodes, inits
