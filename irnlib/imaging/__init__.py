"""Pixels: reading and writing images, MATLAB-exact bicubic resampling, the paper's PSNR/SSIM.

Imports only irnlib.runtime.
"""
