/* iLBC (RFC 3951/3952) through FFmpeg's native decoder: Debian 12 has no libilbc, and libavcodec
 * is packaged, maintained and fuzzed. One frame (38 or 50 bytes) per call; see src/ilbc.rs. */
#include <stdint.h>
#include <string.h>
#include <libavcodec/avcodec.h>

typedef struct vx_ilbc {
    AVCodecContext *ctx;
    AVPacket *pkt;
    AVFrame *frame;
    /* FFmpeg's bit readers may read past the end: packets carry zeroed padding. */
    uint8_t buf[64 + AV_INPUT_BUFFER_PADDING_SIZE];
} vx_ilbc;

void vx_ilbc_free(vx_ilbc *d)
{
    if (!d)
        return;
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->ctx);
    av_free(d);
}

vx_ilbc *vx_ilbc_new(int block_align)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_ILBC);
    vx_ilbc *d;
    if (!codec || (block_align != 38 && block_align != 50))
        return NULL;
    d = av_mallocz(sizeof(*d));
    if (!d)
        return NULL;
    d->ctx = avcodec_alloc_context3(codec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->ctx || !d->pkt || !d->frame)
        goto fail;
    d->ctx->block_align = block_align;
    d->ctx->sample_rate = 8000;
    av_log_set_level(AV_LOG_QUIET);
    if (avcodec_open2(d->ctx, codec, NULL) < 0)
        goto fail;
    return d;
fail:
    vx_ilbc_free(d);
    return NULL;
}

/* Decodes one frame of exactly block_align bytes into out (room for out_cap samples).
 * Returns the number of samples, or -1. */
int vx_ilbc_decode(vx_ilbc *d, const uint8_t *data, int len, int16_t *out, int out_cap)
{
    int ret, n;
    if (!d || len != d->ctx->block_align || len > 64)
        return -1;
    memset(d->buf, 0, sizeof(d->buf));
    memcpy(d->buf, data, (size_t)len);
    d->pkt->data = d->buf;
    d->pkt->size = len;
    ret = avcodec_send_packet(d->ctx, d->pkt);
    d->pkt->data = NULL;
    d->pkt->size = 0;
    if (ret < 0)
        return -1;
    ret = avcodec_receive_frame(d->ctx, d->frame);
    if (ret < 0)
        return -1;
    n = d->frame->nb_samples;
    if (d->frame->format != AV_SAMPLE_FMT_S16 || n < 0 || n > out_cap) {
        av_frame_unref(d->frame);
        return -1;
    }
    memcpy(out, d->frame->data[0], (size_t)n * sizeof(int16_t));
    av_frame_unref(d->frame);
    return n;
}
