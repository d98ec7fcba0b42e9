import torch

from soscope.models.decoders import EnhancementDecoder


def test_enhancement_decoder_is_its_first_layer_on_the_concatenated_input():
    torch.manual_seed(0)
    decoder = EnhancementDecoder(z_dim=4, feat_dim=6, out_dim=3, hidden=8, context_dim=5)
    z, feat, context = torch.randn(10, 4), torch.randn(10, 6).half(), torch.randn(10, 5)
    k = torch.randint(1, 8, (10, 1)).float()
    inputs = torch.cat([z / k, (2 - 1 / k) * feat.float(), context], dim=-1)
    torch.testing.assert_close(decoder(z, feat, k, context), decoder.net(inputs))
    plain = EnhancementDecoder(z_dim=4, feat_dim=6, out_dim=3, hidden=8)
    inputs = torch.cat([z / k, (2 - 1 / k) * feat.float()], dim=-1)
    torch.testing.assert_close(plain(z, feat, k), plain.net(inputs))
