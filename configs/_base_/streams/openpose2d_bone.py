# Bone stream of 2D OpenPose-18 Kinetics skeletons (x, y, score).
train_pipeline = [
    dict(type='PreNormalize2D', img_shape=(256, 340)),
    dict(type='GenSkeFeat', dataset='openpose', feats=['b']),
    dict(type='UniformSampleFrames', clip_len=64),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='PreNormalize2D', img_shape=(256, 340)),
    dict(type='GenSkeFeat', dataset='openpose', feats=['b']),
    dict(
        type='UniformSampleFrames', clip_len=64, num_clips=1,
        test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='PreNormalize2D', img_shape=(256, 340)),
    dict(type='GenSkeFeat', dataset='openpose', feats=['b']),
    dict(
        type='UniformSampleFrames', clip_len=64, num_clips=10,
        test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
