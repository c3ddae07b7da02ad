"""Layers, one file per family. Every layer follows the protocol in :mod:`glassnet.layers.base`."""
from glassnet.layers.activation import Activation, LeakyReLU, PReLU, ReLU, Softmax
from glassnet.layers.base import Layer, deserialize, serialize
from glassnet.layers.conv import Conv2D, ZeroPadding2D
from glassnet.layers.core import Dense, Dropout, Flatten, Reshape
from glassnet.layers.depthwise import DepthwiseConv2D, SeparableConv2D
from glassnet.layers.input import InputLayer
from glassnet.layers.normalization import BatchNormalization
from glassnet.layers.pooling import (AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D,
                                     MaxPooling2D)
from glassnet.layers.merge import Add, Average, Concatenate, Maximum, Multiply, Subtract
from glassnet.layers.preprocessing import RandomCrop, RandomErasing, RandomFlip, Rescaling
from glassnet.layers.reshaping import Cropping2D, UpSampling2D

# Keras's aliases
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
SeparableConvolution2D = SeparableConv2D

__all__ = [
    "Layer", "Activation", "ReLU", "LeakyReLU", "PReLU", "Softmax", "Conv2D", "ZeroPadding2D", "Dense",
    "Dropout", "Flatten", "Reshape", "BatchNormalization", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "InputLayer", "serialize", "deserialize",
    "DepthwiseConv2D", "SeparableConv2D", "UpSampling2D", "Cropping2D", "Rescaling", "RandomFlip", "RandomCrop",
    "RandomErasing",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate",
]
