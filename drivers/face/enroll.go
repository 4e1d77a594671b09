package face

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image/jpeg"
)

// Photo is an enrolment photo and the name it is reported under.
type Photo struct {
	Name string
	JPEG []byte
}

// Enroll makes a trainee's enrolment from their photos with rec (a recognizer with jitter, for
// enrolment). Every photo must show exactly one face that passes the quality gate of p; a photo
// that does not fails the whole enrolment with a sentence that says which photo and why, so a
// trainee is never enrolled from a silent empty template.
func Enroll(rec Recognizer, p Policy, trainee string, photos []Photo, jitter int) (TraineeFaces, error) {
	t := TraineeFaces{Trainee: trainee}
	if trainee == "" {
		return t, errors.New("face: enrol: no trainee ID")
	}
	if len(photos) == 0 {
		return t, errors.New("face: enrol: no photo")
	}
	var errs []error
	for _, ph := range photos {
		d, err := enrollOne(rec, &p, ph)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sum := sha256.Sum256(ph.JPEG)
		t.Descriptors = append(t.Descriptors, Enrolled{D: d, Photo: hex.EncodeToString(sum[:]), Jitter: jitter})
	}
	if len(errs) > 0 {
		return TraineeFaces{Trainee: trainee}, fmt.Errorf("face: enrol %s: %w", trainee, errors.Join(errs...))
	}
	return t, nil
}

func enrollOne(rec Recognizer, p *Policy, ph Photo) (Descriptor, error) {
	dets, err := rec.Faces(ph.JPEG)
	if err != nil {
		return Descriptor{}, fmt.Errorf("%s: cannot read the photo as a JPEG: %w", ph.Name, err)
	}
	switch {
	case len(dets) == 0:
		return Descriptor{}, fmt.Errorf("%s: no face found: the detector finds frontal faces at least 80 pixels across; use a sharp, frontal, well-lit photo of the trainee alone", ph.Name)
	case len(dets) > 1:
		return Descriptor{}, fmt.Errorf("%s: %d faces found: an enrolment photo must show the trainee alone", ph.Name, len(dets))
	}
	img, err := jpeg.Decode(bytes.NewReader(ph.JPEG))
	if err != nil {
		return Descriptor{}, fmt.Errorf("%s: cannot read the photo as a JPEG: %w", ph.Name, err)
	}
	q := measure(img, dets[0].Rect, p)
	switch q.Reason {
	case TooSmall:
		return Descriptor{}, fmt.Errorf("%s: the face is too small (%d pixels, want at least %d): use a closer photo", ph.Name, q.Pixels, p.MinFacePixels)
	case NotColour:
		return Descriptor{}, fmt.Errorf("%s: the photo is not in colour (chroma %.1f, want at least %.1f): grayscale and infrared photos are not enrolled", ph.Name, q.Chroma, p.MinChroma)
	case Blurred:
		return Descriptor{}, fmt.Errorf("%s: the face is blurred (sharpness %.1f, want at least %.1f): use a photo in focus", ph.Name, q.Sharpness, p.MinSharpness)
	}
	return dets[0].Descriptor, nil
}
