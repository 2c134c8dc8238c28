"""MDETR (ashkamath/mdetr, commit ea09acc) re-implemented for evaluation, module tree = official state_dict keys.

Every numerical step follows the official modules (cited per class); training-only parts
(criterion, matcher, losses, dropout) are left out: dropout layers are identities at eval.
The model is rebuilt from a checkpoint's ``args`` by :func:`build_from_args`, which reads
every field that changes the architecture or the eval numerics and refuses the ones it
cannot honour (see ``ARG_NOTES``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmbench_mdetr.efficientnet import EFFICIENTNETS, efficientnet_features
from mmbench_mdetr.resnet import RESNETS, FrozenBatchNorm2d, GroupNorm32, ResNetBody

NUM_CLASSES = 255  # ashkamath/mdetr:models/mdetr.py build(): num_classes = 255 (+1 "no object" logit)

#: How every field of the official args parser (ashkamath/mdetr:main.py get_args_parser + dataset
#: config + init_distributed_mode) is treated at evaluation. build_from_args checks that each
#: field of a checkpoint's args is listed here, so an unknown field is noticed, never ignored.
ARG_NOTES: dict[str, str] = {
    # architecture: read by build_from_args
    **{k: "architecture" for k in (
        "backbone", "dilation", "position_embedding", "hidden_dim", "nheads", "enc_layers", "dec_layers",
        "dim_feedforward", "num_queries", "pre_norm", "pass_pos_and_query", "text_encoder_type",
        "contrastive_loss", "contrastive_loss_hdim", "contrastive_align_loss", "masks", "mask_model",
        "do_qa", "split_qa_heads", "predict_final", "combine_datasets", "aux_loss", "no_detection",
        "mmbench_resnet")},
    # weights / batching: read by the grounder
    "ema": "weights (model_ema with --ema)", "batch_size": "padding (official batch semantics)",
    "device": "the device option decides", "frozen_weights": "only wraps DETRsegm (masks)",
    # no effect on eval outputs (training, data paths, logging)
    **{k: "no effect on eval outputs" for k in (
        "run_name", "dataset_config", "combine_datasets_val", "coco_path", "vg_img_path", "vg_ann_path",
        "clevr_img_path", "clevr_ann_path", "phrasecut_ann_path", "phrasecut_orig_ann_path",
        "modulated_lvis_ann_path", "lr", "lr_backbone", "text_encoder_lr", "weight_decay", "epochs", "lr_drop",
        "epoch_chunks", "optimizer", "clip_max_norm", "eval_skip", "schedule", "ema_decay",
        "fraction_warmup_steps", "freeze_text_encoder", "dropout", "remove_difficult", "set_loss",
        "temperature_NCE", "set_cost_class", "set_cost_bbox", "set_cost_giou", "ce_loss_coef", "mask_loss_coef",
        "dice_loss_coef", "bbox_loss_coef", "giou_loss_coef", "qa_loss_coef", "eos_coef",
        "contrastive_loss_coef", "contrastive_align_loss_coef", "test", "test_type", "output_dir", "seed",
        "resume", "load", "start_epoch", "eval", "num_workers", "world_size", "dist_url", "distributed", "rank",
        "gpu", "dist_backend", "refexp_dataset_name", "refexp_ann_path", "flickr_img_path", "flickr_ann_path",
        "flickr_dataset_path", "GT_type", "lvis_subset", "gqa_ann_path", "gqa_split", "clevr_variant",
        "no_clevr_box", "lvis_minival", "vg_ann_path", "mmbench_note")},
}

REQUIRED_ARGS = ("backbone", "hidden_dim", "nheads", "enc_layers", "dec_layers", "dim_feedforward", "num_queries",
                 "text_encoder_type")
DEFAULTS = {  # ashkamath/mdetr:main.py parser defaults for fields older checkpoints may lack
    "dilation": False, "position_embedding": "sine", "pre_norm": False, "pass_pos_and_query": True,
    "contrastive_loss": False, "contrastive_loss_hdim": 64, "contrastive_align_loss": True, "masks": False,
    "mask_model": "none", "do_qa": False, "split_qa_heads": False, "predict_final": False,
    "combine_datasets": [], "aux_loss": True, "no_detection": False,
}


class ArgsError(ValueError):
    """args describe an MDETR this implementation cannot rebuild (message names the field)."""


# --- backbone --------------------------------------------------------------------------------


class PositionEmbeddingSine(nn.Module):
    """ashkamath/mdetr:models/position_encoding.py PositionEmbeddingSine(normalize=True, scale=2*pi)."""

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0):
        super().__init__()
        self.num_pos_feats, self.temperature, self.scale = num_pos_feats, temperature, 2 * math.pi

    def forward(self, x, mask):
        not_mask = ~mask
        y = not_mask.cumsum(1, dtype=torch.float32)
        xx = not_mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y = y / (y[:, -1:, :] + eps) * self.scale
        xx = xx / (xx[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        px, py = xx[..., None] / dim_t, y[..., None] / dim_t
        px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
        py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)  # y half first, as the official


class PositionEmbeddingLearned(nn.Module):
    """ashkamath/mdetr:models/position_encoding.py PositionEmbeddingLearned (50 rows / cols; x half first)."""

    def __init__(self, num_pos_feats: int):
        super().__init__()
        self.row_embed = nn.Embedding(50, num_pos_feats)
        self.col_embed = nn.Embedding(50, num_pos_feats)

    def forward(self, x, mask):
        h, w = x.shape[-2:]
        xe = self.col_embed(torch.arange(w, device=x.device))
        ye = self.row_embed(torch.arange(h, device=x.device))
        pos = torch.cat([xe.unsqueeze(0).repeat(h, 1, 1), ye.unsqueeze(1).repeat(1, w, 1)], dim=-1)
        return pos.permute(2, 0, 1).unsqueeze(0).repeat(x.shape[0], 1, 1, 1)


class _Body(nn.Module):
    def __init__(self, body: ResNetBody):
        super().__init__()
        self.body = body
        self.num_channels = body.num_channels


class Joiner(nn.Sequential):
    """ashkamath/mdetr:models/backbone.py Joiner: [0] = backbone (``.body``), [1] = position embedding.

    Only the last feature map is used (args.masks is False): layer4 and its mask,
    ``F.interpolate(mask[None].float(), size).bool()[0]`` (nearest), pos cast to the features' dtype.
    """

    def __init__(self, body: ResNetBody, pos: nn.Module):
        super().__init__(_Body(body), pos)
        self.num_channels = body.num_channels

    def forward(self, tensors, mask):
        x = self[0].body(tensors)
        m = F.interpolate(mask[None].float(), size=x.shape[-2:]).bool()[0]
        return x, m, self[1](x, m).to(x.dtype)


# --- transformer -----------------------------------------------------------------------------


class EncoderLayer(nn.Module):
    """ashkamath/mdetr:models/transformer.py TransformerEncoderLayer.forward_post (pre_norm=False)."""

    def __init__(self, d, nhead, dff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead)
        self.linear1, self.linear2 = nn.Linear(d, dff), nn.Linear(dff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, src, key_padding_mask, pos):
        q = k = src + pos
        src = self.norm1(src + self.self_attn(q, k, value=src, key_padding_mask=key_padding_mask)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    """ashkamath/mdetr:models/transformer.py TransformerDecoderLayer.forward_post.

    Self-attention -> norm1, cross-attention over the whole encoder output (image AND text
    tokens; the official text cross-attention and norm2 are commented out) -> norm3, FFN -> norm4.
    """

    def __init__(self, d, nhead, dff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead)
        self.cross_attn_image = nn.MultiheadAttention(d, nhead)
        self.linear1, self.linear2 = nn.Linear(d, dff), nn.Linear(dff, d)
        self.norm1, self.norm3, self.norm4 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, tgt, memory, memory_key_padding_mask, pos, query_pos):
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, k, value=tgt)[0])
        tgt2 = self.cross_attn_image(query=tgt + query_pos, key=memory + pos, value=memory,
                                     key_padding_mask=memory_key_padding_mask)[0]
        tgt = self.norm3(tgt + tgt2)
        return self.norm4(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Encoder(nn.Module):
    def __init__(self, d, nhead, dff, n):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d, nhead, dff) for _ in range(n))

    def forward(self, src, key_padding_mask, pos):
        for layer in self.layers:  # no final norm when pre_norm is False (official encoder_norm = None)
            src = layer(src, key_padding_mask, pos)
        return src


class Decoder(nn.Module):
    def __init__(self, d, nhead, dff, n):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d, nhead, dff) for _ in range(n))
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt, memory, memory_key_padding_mask, pos, query_pos):
        out, inter = tgt, []
        for layer in self.layers:  # return_intermediate_dec=True: every layer's output through the shared norm
            out = layer(out, memory, memory_key_padding_mask, pos, query_pos)
            inter.append(self.norm(out))
        return torch.stack(inter)


class FeatureResizer(nn.Module):
    """ashkamath/mdetr:models/transformer.py FeatureResizer: Linear -> LayerNorm(eps=1e-12) (-> dropout)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Linear(cin, cout, bias=True)
        self.layer_norm = nn.LayerNorm(cout, eps=1e-12)

    def forward(self, x):
        return self.layer_norm(self.fc(x))


class Transformer(nn.Module):
    """ashkamath/mdetr:models/transformer.py Transformer (encode_and_save, then decode)."""

    def __init__(self, d, nhead, enc, dec, dff, text_encoder: nn.Module, contrastive_loss: bool):
        super().__init__()
        self.encoder = Encoder(d, nhead, dff, enc)
        self.decoder = Decoder(d, nhead, dff, dec)
        self.CLS = nn.Embedding(1, d) if contrastive_loss else None
        self.text_encoder = text_encoder
        self.resizer = FeatureResizer(text_encoder.config.hidden_size, d)
        self.d_model = d

    def forward(self, src, mask, query_embed, pos_embed, input_ids, attention_mask):
        bs = src.shape[0]
        src = src.flatten(2).permute(2, 0, 1)
        pos_embed = pos_embed.flatten(2).permute(2, 0, 1)
        query_embed = query_embed.unsqueeze(1).repeat(1, bs, 1)
        mask = mask.flatten(1)
        if self.CLS is not None:  # contrastive_loss: a CLS token in front of the image tokens
            src = torch.cat((self.CLS.weight.view(1, 1, -1).repeat(1, bs, 1), src))
            pos_embed = torch.cat((torch.zeros(1, bs, self.d_model, device=src.device, dtype=pos_embed.dtype),
                                   pos_embed))
            mask = torch.cat((torch.zeros(bs, 1, dtype=torch.bool, device=src.device), mask), dim=1)
        tgt = torch.zeros_like(query_embed)  # pass_pos_and_query=True
        text = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        text_memory = text.last_hidden_state.transpose(0, 1)
        text_attention_mask = attention_mask.ne(1).bool()  # official: inverted HF mask
        text_resized = self.resizer(text_memory).to(src.dtype)
        src = torch.cat([src, text_resized], dim=0)
        mask = torch.cat([mask, text_attention_mask], dim=1)
        pos_embed = torch.cat([pos_embed, torch.zeros_like(text_resized)], dim=0)
        memory = self.encoder(src, mask, pos_embed)
        hs = self.decoder(tgt, memory, mask, pos_embed, query_embed)
        return hs.transpose(1, 2), {"text_last_hidden_state": text.last_hidden_state, "text_resized": text_resized}


class MLP(nn.Module):
    """ashkamath/mdetr:models/mdetr.py MLP (ReLU between layers)."""

    def __init__(self, cin, hidden, cout, n):
        super().__init__()
        h = [hidden] * (n - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip([cin] + h, h + [cout]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class MDETR(nn.Module):
    """ashkamath/mdetr:models/mdetr.py MDETR: modules and names as the official (state_dict compatible)."""

    def __init__(self, backbone: Joiner, transformer: Transformer, num_queries: int, contrastive_hdim: int,
                 contrastive_loss: bool, contrastive_align_loss: bool, qa_dataset: str | None,
                 split_qa_heads: bool, predict_final: bool):
        super().__init__()
        d = transformer.d_model
        self.num_queries = num_queries
        self.transformer = transformer
        self.class_embed = nn.Linear(d, NUM_CLASSES + 1)
        self.isfinal_embed = nn.Linear(d, 1) if predict_final else None
        self.bbox_embed = MLP(d, d, 4, 3)
        self.query_embed = nn.Embedding(num_queries, d)
        self.qa_dataset, self.split_qa_heads = qa_dataset, split_qa_heads
        self.n_qa_queries = 0
        if qa_dataset is not None:
            nb = 6 if qa_dataset == "gqa" else 4
            self.qa_embed = nn.Embedding(nb if split_qa_heads else 1, d)
            self.n_qa_queries = nb if split_qa_heads else 1
        self.input_proj = nn.Conv2d(backbone.num_channels, d, kernel_size=1)
        self.backbone = backbone
        if contrastive_loss:
            self.contrastive_projection_image = nn.Linear(d, contrastive_hdim, bias=False)
            self.contrastive_projection_text = nn.Linear(transformer.text_encoder.config.hidden_size,
                                                         contrastive_hdim, bias=False)
        if contrastive_align_loss:
            self.contrastive_align_projection_image = nn.Linear(d, contrastive_hdim)
            self.contrastive_align_projection_text = nn.Linear(d, contrastive_hdim)
        if qa_dataset is not None:  # answer heads: loaded (strict state_dict), not used for grounding
            if split_qa_heads:
                if qa_dataset == "gqa":
                    self.answer_type_head = nn.Linear(d, 5)
                    self.answer_rel_head = nn.Linear(d, 1594)
                    self.answer_obj_head = nn.Linear(d, 3)
                    self.answer_global_head = nn.Linear(d, 111)
                    self.answer_attr_head = nn.Linear(d, 403)
                    self.answer_cat_head = nn.Linear(d, 678)
                else:  # official: the CLEVR type head replaces the 5-way one (3 answer types)
                    self.answer_type_head = nn.Linear(d, 3)
                    self.answer_binary_head = nn.Linear(d, 1)
                    self.answer_attr_head = nn.Linear(d, 15)
                    self.answer_reg_head = MLP(d, d, 20, 3)
            else:
                self.answer_head = nn.Linear(d, 1853)

    def forward(self, tensors, mask, input_ids, attention_mask, *, debug: bool = False):
        src, m, pos = self.backbone(tensors, mask)
        query = self.query_embed.weight
        if self.qa_dataset is not None:
            query = torch.cat([query, self.qa_embed.weight], 0)
        hs, extra = self.transformer(self.input_proj(src), m, query, pos, input_ids, attention_mask)
        if self.n_qa_queries:  # the answer queries are the last ones (official slicing hs[:, :, :-nb])
            hs = hs[:, :, :-self.n_qa_queries]
        logits = self.class_embed(hs)
        boxes = self.bbox_embed(hs).sigmoid()
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.isfinal_embed is not None:
            out["pred_isfinal"] = self.isfinal_embed(hs)[-1]
        if debug:
            out.update(aux_pred_logits=logits[:-1], aux_pred_boxes=boxes[:-1], layer4=src, pos=pos, **extra)
        return out


# --- building from args ----------------------------------------------------------------------


def _get(args: dict, key: str):
    return args[key] if key in args else DEFAULTS[key]


def check_args(args: dict) -> None:
    missing = [k for k in REQUIRED_ARGS if k not in args]
    if missing:
        raise ArgsError(f"args lack {', '.join(missing)} (an MDETR main.py checkpoint stores them all)")
    if _get(args, "pre_norm"):
        raise ArgsError("args.pre_norm=True: the official decoder's forward_pre is 'not implemented yet' "
                        "(assert False in ashkamath/mdetr:models/transformer.py), so such a model cannot run")
    if not _get(args, "pass_pos_and_query"):
        raise ArgsError("args.pass_pos_and_query=False: the official encode_and_save path crashes with it "
                        "(ashkamath/mdetr:models/transformer.py); not supported")
    if _get(args, "masks") or str(_get(args, "mask_model")) != "none":
        raise ArgsError(f"args.masks={_get(args, 'masks')!r} / mask_model={_get(args, 'mask_model')!r}: segmentation "
                        "(DETRsegm) checkpoints are not supported by this grounding plugin")
    if _get(args, "no_detection"):
        raise ArgsError("args.no_detection=True: the checkpoint has no detection output to ground with")
    if str(_get(args, "position_embedding")) not in ("sine", "v2", "learned", "v3"):
        raise ArgsError(f"args.position_embedding={args['position_embedding']!r}: not supported "
                        "(official choices: sine/v2, learned/v3)")
    if int(args["hidden_dim"]) % int(args["nheads"]):
        raise ArgsError(f"args.hidden_dim={args['hidden_dim']} is not divisible by nheads={args['nheads']}")


def build_backbone_body(args: dict) -> ResNetBody:
    name = str(args["backbone"])
    dilation = bool(_get(args, "dilation"))
    if name.startswith("timm_"):  # ashkamath/mdetr:models/backbone.py build_backbone -> TimmBackbone(name[5:])
        if name[len("timm_"):] not in EFFICIENTNETS:
            raise ArgsError(f"args.backbone={name!r}: of timm's models only the TF EfficientNets are supported "
                            f"(timm_ + one of {', '.join(EFFICIENTNETS)})")
        return efficientnet_features(name[len("timm_"):])  # args.dilation is not passed (as the official)
    if name in ("resnet50-gn", "resnet101-gn"):
        block, layers, groups, wpg = RESNETS[name[:-3]]
        return ResNetBody(block, layers, groups, wpg, dilation, norm_layer=GroupNorm32)
    if name in RESNETS:
        block, layers, groups, wpg = RESNETS[name]
        return ResNetBody(block, layers, groups, wpg, dilation)
    if name == "mmbench_resnet":  # mmbench's own small ResNets (demo checkpoints): not an official name
        cfg = args.get("mmbench_resnet") or {}
        try:
            return ResNetBody(str(cfg["block"]), tuple(int(v) for v in cfg["layers"]), 1, 64, dilation,
                              stem=int(cfg["width"]), pool=int(cfg.get("pool", 1)),
                              coords=bool(cfg.get("coords", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArgsError(f"args.mmbench_resnet={cfg!r}: expected {{'block', 'layers', 'width'[, 'pool', 'coords']}} ({exc})") from None
    raise ArgsError(f"args.backbone={name!r}: unknown backbone; supported: {', '.join(RESNETS)}, resnet50-gn, "
                    "resnet101-gn, timm_tf_efficientnet_b0..b8[_ap|_ns] (e.g. timm_tf_efficientnet_b3_ns)")


def qa_dataset_of(args: dict) -> str | None:
    """ashkamath/mdetr:models/mdetr.py build(): which QA heads do_qa adds."""
    if not _get(args, "do_qa"):
        return None
    ds = list(_get(args, "combine_datasets") or [])
    if "gqa" in ds:
        return "gqa"
    if "clevr" in ds or "clevr_question" in ds:
        return "clevr"
    raise ArgsError(f"args.do_qa=True needs gqa or clevr in args.combine_datasets (got {ds})")


def build_from_args(args: dict, text_encoder_dir: str | Path) -> MDETR:
    """Rebuild the official architecture from a checkpoint's args; the RoBERTa config comes from a local folder."""
    from transformers import RobertaConfig, RobertaModel

    check_args(args)
    unknown = sorted(k for k in args if k not in ARG_NOTES)
    if unknown:
        raise ArgsError(f"args has field(s) {', '.join(unknown)} that this MDETR implementation does not know; "
                        "refusing to guess whether they change the model")
    d, nhead = int(args["hidden_dim"]), int(args["nheads"])
    body = build_backbone_body(args)
    pe = str(_get(args, "position_embedding"))
    pos = PositionEmbeddingSine(d // 2) if pe in ("sine", "v2") else PositionEmbeddingLearned(d // 2)
    config = RobertaConfig.from_pretrained(str(text_encoder_dir))
    text = RobertaModel(config)  # weights come from the checkpoint (transformer.text_encoder.*)
    transformer = Transformer(d, nhead, int(args["enc_layers"]), int(args["dec_layers"]), int(args["dim_feedforward"]),
                              text, bool(_get(args, "contrastive_loss")))
    return MDETR(Joiner(body, pos), transformer, int(args["num_queries"]), int(_get(args, "contrastive_loss_hdim")),
                 bool(_get(args, "contrastive_loss")), bool(_get(args, "contrastive_align_loss")), qa_dataset_of(args),
                 bool(_get(args, "split_qa_heads")), bool(_get(args, "predict_final")))


def load_state(model: MDETR, state: dict, *, where: str = "checkpoint") -> None:
    """Strict load; ``embeddings.position_ids`` / ``token_type_ids`` buffers (transformers 4.x) are dropped."""
    state = {k: v for k, v in state.items()
             if not k.startswith("transformer.text_encoder.embeddings.") or not k.endswith(("position_ids",
                                                                                           "token_type_ids"))}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
           if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:3]}")
        if bad:
            parts.append(f"{len(bad)} shape mismatch(es), e.g. {bad[:3]}")
        raise ArgsError(f"{where}: the weights do not fit the architecture rebuilt from args ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)
