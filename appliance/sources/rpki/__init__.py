"""RPKI facts (VRPs, ASPAs) into the store: component.py runs rpki.service.RpkiService in `savd run`."""
