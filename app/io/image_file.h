// Reading any image file Qt can decode (PNG, JPEG, ...) into an attn::Picture, for the CLI's --image FILE
// (and the window's File → Open image): the size is checked before the pixels are read, Qt's allocation
// limit is set, and every failure is one line a person can act on.
#pragma once
#include <string>

#include "attention/image.h"
#include "attention/types.h"

namespace attnlab::io {

/// The picture in the file at `path`, RGB in [0, 1] (as Qt converts it to RGB888), named by its path. Failure:
/// "cannot read 'x.jpg' as an image: <why>", or "x.png is 20000×20000 pixels; attnlab reads images up to
/// 64 Mpixel" before anything of that size is allocated.
attn::Expected<attn::Picture> readImageFile(const std::string& path, attn::Index max_pixels = attn::kMaxImagePixels);

}  // namespace attnlab::io
