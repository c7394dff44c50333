"""The student: a linear ordinal model over the featuriser's hashed n-grams and overlap features.

``f = bag · w + dense · v + b`` is one number per answer on the level-index scale, fitted by ridge
regression to a mix of the teacher's predictions and the human levels (distillation: the teacher's
numbers carry what it learned about partial answers, the human levels keep the student honest).
Cut-points fitted on out-of-fold predictions decode ``f`` into a level, and a cumulative-logit link
gives calibrated probabilities per level (``distillation.ordinal``).

A pooled student (one model over many questions) has a second branch for questions it was not trained
on (``NewQuestionBranch``): there the answer words it learned from other questions are noise, so it
scores from the overlap features alone, decoded by cut-points and a link scale fitted on whole questions
held out.  The featuriser's ``question_seen`` column says which branch scores a row.

The estimator follows scikit-learn's conventions (``fit`` returns ``self``, fitted attributes end in
``_``, ``classes_``, ``predict_proba``) and ``to_onnx()`` writes its twin, the graph the scorer serves
(contract: ``distillation.onnx_contract``).  No torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from distillation import onnx_contract as oc
from distillation import ordinal
from distillation.features import N_NAMESPACES
from distillation.word_cnn import WordCNN


@dataclass
class Features:
    """Featurised rows: the sparse bag and the dense features (and the ONNX feeds they came from)."""

    bag: sp.csr_matrix
    dense: np.ndarray
    words: np.ndarray | None = None  # int64 [n, w] word ids, when the featuriser has a vocabulary

    @classmethod
    def compute(cls, fz, responses, questions, references, chunk: int = 4000) -> Features:
        """Features of ``responses``; ``questions`` and ``references``: one per response, or one string."""
        n = len(responses)
        questions = [questions] * n if isinstance(questions, str) else questions
        references = [references] * n if isinstance(references, str) else references
        bags, denses, words = [], [], []
        for s in range(0, len(responses), chunk):
            f = fz.transform(responses[s : s + chunk], questions[s : s + chunk], references[s : s + chunk])
            bags.append(fz.to_csr(f))
            denses.append(f["dense"])
            words.append(f.get("word"))
        if not bags:
            return cls(sp.csr_matrix((0, fz.n_buckets)), np.zeros((0, fz.n_dense), np.float32),
                       np.zeros((0, 1), np.int64) if fz.vocabulary is not None else None)
        return cls(sp.vstack(bags, format="csr"), np.concatenate(denses),
                   _stack_words(words) if fz.vocabulary is not None else None)

    def __len__(self) -> int:
        return self.bag.shape[0]

    def __getitem__(self, idx) -> Features:
        return Features(self.bag[idx], self.dense[idx], None if self.words is None else self.words[idx])

    def concat(self, other: Features) -> Features:
        words = None if self.words is None else _stack_words([self.words, other.words])
        return Features(sp.vstack([self.bag, other.bag], format="csr"), np.concatenate([self.dense, other.dense]),
                        words)


def _stack_words(blocks: list[np.ndarray]) -> np.ndarray:
    """Word-id blocks of different widths, padded to the widest (padding: id 0)."""
    w = max(b.shape[1] for b in blocks)
    return np.concatenate([np.pad(b, ((0, 0), (0, w - b.shape[1]))) for b in blocks])


def fit_dense(dense: np.ndarray, y: np.ndarray, dense_weight: float,
              sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Ridge (alpha 1) on ``dense_weight * dense`` (the stagewise student's first stage): the coefficients
    of ``dense`` itself, and the intercept."""
    from sklearn.linear_model import Ridge

    m = Ridge(alpha=1.0).fit(dense.astype(np.float64) * dense_weight, y, sample_weight=sample_weight)
    return m.coef_ * dense_weight, float(m.intercept_)


@dataclass
class NewQuestionBranch:
    """How a pooled student scores a question it was not trained on: ``dense · coef + intercept``,
    decoded by its own cut-points and link scale (fitted on whole questions held out)."""

    coef: np.ndarray
    intercept: float
    cuts: np.ndarray
    scale: float
    seen_column: int  # the dense column that says whether a row's question was trained on
    calibration: np.ndarray | None = None  # matrix scaling of the link (ordinal.fit_calibration)

    def decision_function(self, X: Features) -> np.ndarray:
        return X.dense.astype(np.float64) @ self.coef + self.intercept

    def n_params(self) -> int:
        return len(self.coef) + 1 + len(self.cuts) + 1 + _size(self.calibration)


def _size(calibration: np.ndarray | None) -> int:
    return 0 if calibration is None else int(np.asarray(calibration).size)


class LinearStudent:
    """Ridge regression on ``[bag, dense_weight * dense]``; with ``stagewise`` the dense features are fitted
    first and the bag fits what they leave (a pooled model then still scores questions it never saw,
    from the overlap features alone, instead of from the training questions' words)."""

    def __init__(self, alpha: float = 1.0, dense_weight: float = 3.0, stagewise: bool = False):
        self.alpha = alpha
        self.dense_weight = dense_weight
        self.stagewise = stagewise

    # -- regression ------------------------------------------------------------------------------
    def fit(self, X: Features, y: np.ndarray, sample_weight: np.ndarray | None = None) -> LinearStudent:
        """Fit ``f`` to continuous targets ``y`` (level-index scale)."""
        from sklearn.linear_model import Ridge

        y = np.asarray(y, dtype=np.float64)
        dense = X.dense.astype(np.float64) * self.dense_weight
        if self.stagewise:
            first = Ridge(alpha=1.0).fit(dense, y, sample_weight=sample_weight)  # as fit_dense
            resid = y - first.predict(dense)
            second = Ridge(alpha=self.alpha, solver="sparse_cg", tol=1e-6, max_iter=2000)
            second.fit(X.bag, resid, sample_weight=sample_weight)
            self.coef_bag_ = second.coef_.astype(np.float64)
            self.coef_dense_ = first.coef_ * self.dense_weight
            self.intercept_ = float(first.intercept_ + second.intercept_)
        else:
            design = sp.hstack([X.bag, sp.csr_matrix(dense)], format="csr")
            model = Ridge(alpha=self.alpha, solver="sparse_cg", tol=1e-6, max_iter=2000)
            model.fit(design, y, sample_weight=sample_weight)
            nb = X.bag.shape[1]
            self.coef_bag_ = model.coef_[:nb].astype(np.float64)
            self.coef_dense_ = model.coef_[nb:] * self.dense_weight
            self.intercept_ = float(model.intercept_)
        return self

    new_questions_: NewQuestionBranch | None = None
    words_: WordCNN | None = None  # a word CNN beside the bag (set_words); its share of the score
    words_share_: float = 0.0

    def set_words(self, cnn: WordCNN | None, share: float) -> LinearStudent:
        """Score ``(1 - share) * (the linear part) + share * cnn(words)`` (``distillation.word_cnn``); a
        pooled student has no word CNN (its words would be the training questions')."""
        if cnn is not None and self.new_questions_ is not None:
            raise ValueError("a pooled student with a new-question branch has no word CNN")
        if not 0.0 <= share < 1.0:
            raise ValueError("the word CNN's share must be in [0, 1)")
        self.words_, self.words_share_ = (cnn, float(share)) if cnn is not None and share > 0 else (None, 0.0)
        return self

    def _new(self, X: Features) -> np.ndarray:
        """Rows whose question the model was not trained on (all False without a new-question branch)."""
        if self.new_questions_ is None:
            return np.zeros(len(X), dtype=bool)
        return X.dense[:, self.new_questions_.seen_column] < 0.5

    def decision_function(self, X: Features) -> np.ndarray:
        f = X.bag @ self.coef_bag_ + X.dense.astype(np.float64) @ self.coef_dense_ + self.intercept_
        if self.words_ is not None:
            if X.words is None:
                raise ValueError("this student reads word ids: featurise with its vocabulary")
            f = (1 - self.words_share_) * f + self.words_share_ * self.words_.predict(X.words)
        new = self._new(X)
        if new.any():
            f[new] = self.new_questions_.decision_function(X[np.flatnonzero(new)])
        return f

    # -- decoding --------------------------------------------------------------------------------
    def set_decoding(self, labels, cuts, scale: float, calibration=None) -> LinearStudent:
        """Levels (their score values), cut-points, link scale and the link's matrix scaling (``[k, k + 1]``,
        None for none), all fitted held-out (``distillation.ordinal``)."""
        self.classes_ = np.asarray(labels)
        self.cuts_ = np.asarray(cuts, dtype=np.float64)
        self.scale_ = float(scale)
        k = len(self.classes_)
        self.calibration_ = None if calibration is None else np.asarray(calibration, dtype=np.float64)
        if self.calibration_ is not None and self.calibration_.shape != (k, k + 1):
            raise ValueError(f"calibration must be [{k}, {k + 1}] for {k} levels, not {list(self.calibration_.shape)}")
        return self

    def set_new_questions(self, branch: NewQuestionBranch | None) -> LinearStudent:
        """The branch that scores questions the model was not trained on (pooled models)."""
        if branch is not None and self.words_ is not None:
            raise ValueError("a student with a word CNN has no new-question branch")
        if branch is not None and len(branch.coef) != len(self.coef_dense_):
            raise ValueError("the new-question branch must read the same dense features as the student")
        self.new_questions_ = branch
        return self

    def predict_proba(self, X: Features) -> np.ndarray:
        f, new = self.decision_function(X), self._new(X)
        p = ordinal.calibrated_probabilities(f, self.cuts_, self.scale_, self.calibration_)
        if new.any():
            b = self.new_questions_
            p[new] = ordinal.calibrated_probabilities(f[new], b.cuts, b.scale, b.calibration)
        return p

    def predict_levels(self, X: Features) -> np.ndarray:
        """The decoded level index of each row."""
        f, new = self.decision_function(X), self._new(X)
        level = ordinal.decode(f, self.cuts_)
        if new.any():
            level[new] = ordinal.decode(f[new], self.new_questions_.cuts)
        return level

    def predict(self, X: Features) -> np.ndarray:
        return self.classes_[self.predict_levels(X)]

    def n_params(self) -> int:
        n = len(self.coef_bag_) + len(self.coef_dense_) + 1
        n += len(self.cuts_) + 1 + _size(self.calibration_) if hasattr(self, "cuts_") else 0
        n += self.words_.n_params() + 1 if self.words_ is not None else 0  # + 1: its share
        return n + (self.new_questions_.n_params() if self.new_questions_ is not None else 0)

    # -- ONNX twin -------------------------------------------------------------------------------
    def to_onnx(self):
        """The fitted student as an ONNX graph (``distillation.onnx_contract``)."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        k = len(self.classes_)
        f32 = np.float32
        lin = 1.0 - self.words_share_  # the linear part's share (1 without a word CNN)
        inits = [
            # the bag weights, plus a last bucket of weight 0: the featuriser's sink
            numpy_helper.from_array(np.append(lin * self.coef_bag_, 0.0).astype(f32), "w_bag"),
            numpy_helper.from_array((lin * self.coef_dense_).astype(f32).reshape(-1, 1), "w_dense"),
            numpy_helper.from_array(np.array([lin * self.intercept_], f32), "bias"),
            numpy_helper.from_array(self.cuts_.astype(f32).reshape(1, -1), "cuts"),
            numpy_helper.from_array(np.array([self.scale_], f32), "scale"),
            numpy_helper.from_array(np.array([0], np.int64), "zero_i"),
            numpy_helper.from_array(np.array([1], np.int64), "one_i"),
            numpy_helper.from_array(np.array([-1], np.int64), "minus_one_i"),
            numpy_helper.from_array(np.array([k + 1], np.int64), "k_plus_1"),
            numpy_helper.from_array(np.array([-1, 1], np.int64), "col_shape"),
            numpy_helper.from_array(np.array([-1, N_NAMESPACES], np.int64), "segment_shape"),
        ]
        node = helper.make_node
        nodes = [
            # bag: per (answer, namespace) segment, segment_weight * the sum of its entries' w_bag[bucket]
            # (GatherElements: several times faster than Gather in onnxruntime for a 1-D lookup)
            node("GatherElements", ["w_bag", "bucket"], ["w_entry"], axis=0),
            node("Mul", ["segment_weight", "zero_f"], ["zeros_s"]),
            node("ScatterElements", ["zeros_s", "segment", "w_entry"], ["segment_sum"], axis=0, reduction="add"),
            node("Mul", ["segment_sum", "segment_weight"], ["segment_value"]),
            node("Reshape", ["segment_value", "segment_shape"], ["segment_2d"]),
            node("ReduceSum", ["segment_2d", "one_i"], ["bag_sum"], keepdims=0),
            node("MatMul", ["dense", "w_dense"], ["dense_col"]),
            node("Reshape", ["dense_col", "minus_one_i"], ["dense_sum"]),
            node("Add", ["bag_sum", "dense_sum"], ["f0" if self.words_ is None else "f_linear"]),
        ]
        if self.words_ is not None:  # the bag's weights above are already scaled by (1 - share)
            cnn_nodes, cnn_inits = self.words_.onnx_nodes(self.words_share_, "f_words")
            nodes += [*cnn_nodes, node("Add", ["f_linear", "f_words"], ["f0"])]
            inits += cnn_inits
        cuts, scale = "cuts", "scale"
        b = self.new_questions_
        if b is None:
            nodes += [node("Add", ["f0", "bias"], ["score"]),
                      node("Reshape", ["score", "col_shape"], ["f_col"])]
        else:
            # a question the model was not trained on (question_seen < 0.5): the overlap features alone,
            # with their own cut-points and scale
            inits += [
                numpy_helper.from_array(b.coef.astype(f32).reshape(-1, 1), "w_new"),
                numpy_helper.from_array(np.array([b.intercept], f32), "bias_new"),
                numpy_helper.from_array(b.cuts.astype(f32).reshape(1, -1), "cuts_new"),
                numpy_helper.from_array(np.array([[b.scale]], f32), "scale_new"),
                numpy_helper.from_array(np.array([[self.scale_]], f32), "scale_seen"),
                numpy_helper.from_array(np.array([b.seen_column], np.int64), "seen_index"),
                numpy_helper.from_array(np.array([0.5], f32), "half_f"),
            ]
            nodes += [
                node("Add", ["f0", "bias"], ["score_seen"]),
                node("Reshape", ["score_seen", "col_shape"], ["f_seen_col"]),
                node("Gather", ["dense", "seen_index"], ["seen_value"], axis=1),
                node("Greater", ["seen_value", "half_f"], ["seen"]),
                node("MatMul", ["dense", "w_new"], ["new_col0"]),
                node("Add", ["new_col0", "bias_new"], ["f_new_col"]),
                node("Where", ["seen", "f_seen_col", "f_new_col"], ["f_col"]),
                node("Reshape", ["f_col", "minus_one_i"], ["score"]),
                node("Where", ["seen", "cuts", "cuts_new"], ["cuts_row"]),
                node("Where", ["seen", "scale_seen", "scale_new"], ["scale_row"]),
            ]
            cuts, scale = "cuts_row", "scale_row"
            inits = [t for t in inits if t.name != "scale"]  # scale_seen takes its place
        calibrated = self.calibration_ is not None or (b is not None and b.calibration is not None)
        link_out = "link_probabilities" if calibrated else oc.PROBABILITIES
        nodes += [
            # zeros_col / ones_col: [n, 1] columns built from f_col
            node("Mul", ["f_col", "zero_f"], ["zeros_col"]),
            node("Add", ["zeros_col", "one_f"], ["ones_col"]),
            # ordinal link: P(level <= j) = sigmoid((cut_j - f) / scale); probabilities are the differences
            node("Sub", [cuts, "f_col"], ["margin"]),
            node("Div", ["margin", scale], ["z"]),
            node("Sigmoid", ["z"], ["cum_inner"]),
            node("Concat", ["zeros_col", "cum_inner", "ones_col"], ["cum"], axis=1),
            node("Slice", ["cum", "one_i", "k_plus_1", "one_i"], ["cum_hi"]),
            node("Slice", ["cum", "zero_i", "minus_one_i", "one_i"], ["cum_lo"]),
            node("Sub", ["cum_hi", "cum_lo"], [link_out]),
            node("Greater", ["f_col", cuts], ["above"]),
            node("Cast", ["above"], ["above_i"], to=TensorProto.INT64),
            node("ReduceSum", ["above_i", "one_i"], ["level"], keepdims=0),
        ]
        if calibrated:
            # matrix scaling of the link (ordinal.calibrated_probabilities): softmax(log(max(p, floor)) W^T + b)
            inits.append(numpy_helper.from_array(np.array([ordinal._LOG_FLOOR], f32), "log_floor"))
            nodes += [node("Max", ["link_probabilities", "log_floor"], ["link_floored"]),
                      node("Log", ["link_floored"], ["link_log"])]
            branches = [("seen", self.calibration_)] + ([("new", b.calibration)] if b is not None else [])
            for name, cal in branches:
                cal = np.hstack([np.eye(k), np.zeros((k, 1))]) if cal is None else np.asarray(cal)
                inits += [numpy_helper.from_array(cal[:, :k].T.astype(f32), f"cal_w_{name}"),
                          numpy_helper.from_array(cal[:, k].astype(f32).reshape(1, -1), f"cal_b_{name}")]
                out = oc.PROBABILITIES if b is None else f"probabilities_{name}"
                nodes += [node("MatMul", ["link_log", f"cal_w_{name}"], [f"cal_z0_{name}"]),
                          node("Add", [f"cal_z0_{name}", f"cal_b_{name}"], [f"cal_z_{name}"]),
                          node("Softmax", [f"cal_z_{name}"], [out], axis=1)]
            if b is not None:  # each row through its branch's scaling ("seen": [n, 1], broadcast)
                nodes.append(node("Where", ["seen", "probabilities_seen", "probabilities_new"], [oc.PROBABILITIES]))
        inits += [numpy_helper.from_array(np.array([0.0], f32), "zero_f"),
                  numpy_helper.from_array(np.array([1.0], f32), "one_f")]
        vi = helper.make_tensor_value_info
        graph = helper.make_graph(
            nodes, "kdgrade_student",
            [vi("bucket", TensorProto.INT64, ["m"]), vi("segment", TensorProto.INT64, ["m"]),
             vi("segment_weight", TensorProto.FLOAT, ["s"]),
             vi("dense", TensorProto.FLOAT, ["n", len(self.coef_dense_)])]
            + ([vi("word", TensorProto.INT64, ["n", "w"])] if self.words_ is not None else []),
            [vi(oc.PROBABILITIES, TensorProto.FLOAT, ["n", k]), vi(oc.LEVEL, TensorProto.INT64, ["n"]),
             vi(oc.SCORE, TensorProto.FLOAT, ["n"])],
            inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", oc.OPSET)], producer_name="kdgrade")
        m.ir_version = oc.IR_VERSION
        onnx.checker.check_model(m, full_check=True)
        return m
