"""Spoken output of translations: the on-device voice, the one owner of sound I/O
(`device.audio.output`, the audio counterpart of `device.runtime`), voice-activity detection
for ducking, and the speaker that decides what is said and when (`device.audio.speaker`)."""
